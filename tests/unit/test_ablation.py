"""The truncation ablation's aggregation over seeds and its argument checks (pure logic, no training)."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posttrain import PosttrainError
from posttrain.config.commands import AblateConfig, parse_command
from posttrain.experiments.ablation import METRICS, ablation_main, aggregate, to_markdown

metric = st.floats(min_value=0, max_value=100, allow_nan=False)


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 4, None]),
            st.sampled_from(["with_truncation", "no_truncation"]),
            st.fixed_dictionaries({m: metric for m in METRICS}),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_aggregate_is_mean_and_std_per_budget_and_variant(items):
    rows = [{"budget": b, "variant": v, "seed": i, **m} for i, (b, v, m) in enumerate(items)]
    agg = aggregate(rows)
    assert len(agg) == len({(b, v) for b, v, _ in items})
    for a in agg:
        group = [r for r in rows if r["budget"] == a["budget"] and r["variant"] == a["variant"]]
        assert a["seeds"] == sorted(r["seed"] for r in group)
        for m in METRICS:
            vals = [r[m] for r in group]
            assert a[m] == pytest.approx(statistics.fmean(vals))
            assert a[f"{m}_std"] == pytest.approx(statistics.stdev(vals) if len(vals) > 1 else 0.0)
    budgets = [a["budget"] for a in agg]
    assert budgets == sorted(budgets, key=lambda b: (b is None, b or 0))  # `none` last
    assert to_markdown(agg).count("\n") == len(agg) + 2


def seeds_of(*args):
    return parse_command(AblateConfig, ["out=x", *args], "posttrain ablate truncation").seeds


def test_parse_seeds():
    assert seeds_of("seeds=[0,1,2]") == [0, 1, 2]
    assert seeds_of("seeds=[3]") == [3]
    assert seeds_of() == [0]
    with pytest.raises(PosttrainError, match="seeds"):
        seeds_of("seeds=[a]")
    with pytest.raises(PosttrainError, match="seeds"):
        ablation_main(["truncation", "out=x", "seeds=[]"])
    with pytest.raises(PosttrainError, match="unknown_key"):
        ablation_main(["truncation", "out=x", "unknown_key=1"])


def test_ablation_report_shares_the_sweep_table_and_plot(tmp_path):
    from posttrain.evals.sweep import plot
    from posttrain.experiments.ablation import PLOTTED

    rows = [
        {"budget": b, "variant": v, "seed": s, **{m: float(s + i) for i, m in enumerate(METRICS)}}
        for b in (0, None)
        for v in ("with_truncation", "no_truncation")
        for s in (0, 1)
    ]
    agg = aggregate(rows)
    md = to_markdown(agg)
    assert md.splitlines()[0] == "| budget | variant | " + " | ".join(METRICS) + " |"
    assert "| none | " in md and "± 0.707" in md  # stdev of {s, s+1} over two seeds
    plot(agg, tmp_path / "a.png", metrics=PLOTTED, series="variant", std="_std")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
