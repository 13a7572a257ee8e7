"""Eval aggregation on hand-made score lists: metrics and intervals per slice, paired deltas, markdown;
and the eval stage's row selection (round-robin cap, joined splits) and mode validation."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posttrain import PosttrainError
from posttrain.evals.report import (
    MIN_N,
    ci_key,
    deltas,
    marked,
    metric_rows,
    step_deltas,
    target_metrics,
    to_markdown,
)
from posttrain.evals.stats import paired_diff, wilson


def item(target, uuid, cat, mode, score, fmt=1.0, tokens=10, **kw):
    return {
        "target": target,
        "uuid": uuid,
        "category": cat,
        "mode": mode,
        "score": score,
        "format": fmt,
        "tokens": tokens,
        "think_tokens": 0 if mode == "off" else 5,
        **kw,
    }


def scores(target, right: dict[tuple[str, str], list[float]]):
    """Items for ``{(category, mode): [score per prompt]}``; prompt ids ``<category><i>``."""
    return [item(target, f"{c}{i}", c, m, s) for (c, m), ss in right.items() for i, s in enumerate(ss)]


MODEL = {
    ("math", "on"): [1, 1, 1, 0],
    ("math", "off"): [1, 0, 0, 0],
    ("code", "on"): [0.5, 1.0],
    ("code", "off"): [0.0, 0.5],
    ("math", "budget"): [1, 0, 1, 0],
    ("code", "budget"): [1, 1],
}
BASE = {k: [0.0] * len(v) for k, v in MODEL.items()}


@pytest.fixture
def items():
    return {"model": scores("model", MODEL), "init": scores("init", BASE)}


def test_metrics_means_ci_and_n_for_every_slice(items):
    m = target_metrics(items["model"])
    for sl in (
        "math/on",
        "math/off",
        "math/budget",
        "code/on",
        "code/off",
        "code/budget",
        "all/on",
        "all/off",
    ):
        for metric in ("accuracy", "format"):
            lo, hi = m[f"{sl}/{metric}_ci"]
            assert 0 <= lo <= m[f"{sl}/{metric}"] <= hi <= 1
        assert {f"{sl}/tokens", f"{sl}/think_tokens", f"{sl}/n"} <= set(m)
    assert m["math/on/accuracy"] == 0.75 and m["math/on/n"] == 4
    assert m["math/on/accuracy_ci"] == [round(x, 6) for x in wilson(3, 4)]  # 0/1 scores: Wilson
    assert m["all/on/accuracy"] == pytest.approx(4.5 / 6) and m["all/on/n"] == 6
    assert m["all/all/n"] == 12 and m["all/all/accuracy"] == pytest.approx(6 / 12)  # on + off, no budget
    assert "all/all/format" not in m and m["n_prompts"] == 6
    assert m["accuracy_all"] == m["all/all/accuracy"] and m["accuracy_ci_all"] == m["all/all/accuracy_ci"]


def test_summary_keys_kept_for_claims(items):
    m = target_metrics(items["model"])
    for mode in ("on", "off", "budget"):
        for k in ("format", "accuracy", "think_tokens", "tokens"):
            assert m[f"{k}_{mode}"] == m[f"all/{mode}/{k}"]
        assert m[f"accuracy_ci_{mode}"] == m[f"all/{mode}/accuracy_ci"]
    assert m["tokens_off"] == 10 and m["think_tokens_off"] == 0
    only = target_metrics([i for i in items["model"] if i["mode"] != "budget"], modes=["on", "off"])
    assert "accuracy_budget" not in only and "all/budget/accuracy" not in only


def test_safety_refusal_rates_with_intervals():
    its = [
        item("model", f"s{i}", "safety", "on", 1.0, harmful=i < 3, refusal=float(i in (0, 1, 3)))
        for i in range(5)
    ]
    m = target_metrics(its, modes=["on"])
    assert m["safety/on/refusal_rate"] == pytest.approx(2 / 3) and m["safety/on/over_refusal"] == 0.5
    assert m["safety/on/refusal_rate_ci"] == [round(x, 6) for x in wilson(2, 3)]


def test_deltas_known_values(items):
    d = deltas(items)
    assert list(d) == ["init"]
    got = d["init"]
    assert list(got)[:4] == ["all/all", "all/on", "all/off", "all/budget"]  # pooled slices first
    assert got["math/on"]["delta"] == 0.75 and got["math/on"]["n"] == 4
    assert got["code/off"]["delta"] == 0.25
    assert got["all/all"]["delta"] == 0.5 and got["all/all"]["n"] == 12
    # a domain's on+off prompts pooled: math (3 + 1) / 8, code (1.5 + 0.5) / 4; budget is not pooled
    assert got["math/all"] == {**got["math/all"], "delta": 0.5, "n": 8}
    assert got["code/all"]["delta"] == 0.5 and got["code/all"]["n"] == 4
    assert target_metrics(items["model"])["math/all/n"] == 8 and "math/all/format" not in target_metrics(
        items["model"]
    )
    a = [1, 1, 1, 0]
    _, lo, hi = paired_diff(a, [0, 0, 0, 0])
    assert got["math/on"]["ci"] == [round(lo, 6), round(hi, 6)]
    assert deltas({"model": items["model"], "same": scores("same", MODEL)})["same"]["all/all"] == {
        "delta": 0.0,
        "ci": [0.0, 0.0],
        "n": 12,
    }


def test_deltas_match_items_by_uuid_and_mode(items):
    partial = [i for i in scores("sft", MODEL) if i["uuid"] != "math0"][::-1]  # other order, one prompt fewer
    d = deltas({"model": items["model"], "sft": partial})["sft"]
    assert d["math/on"]["n"] == 3 and d["math/on"]["delta"] == 0.0


def test_markdown_rows_cis_and_delta_table(items):
    results = {t: target_metrics(v) for t, v in items.items()}
    md = to_markdown(results, deltas(items))
    table, _, rest = md.partition("## Deltas")
    rows = [line.split(" | ")[0][2:] for line in table.strip().splitlines()[2:]]
    assert rows == metric_rows(results)
    assert all(not k.endswith("_ci") and "_ci_" not in k for k in rows)
    assert {k for k in results["model"] if ci_key(k) not in results["model"] and k not in rows} <= {
        k for k in results["model"] if k.endswith("_ci") or "_ci_" in k
    }  # every metric has a row; only interval keys are folded into their metric's cell
    lo, hi = results["model"]["math/on/accuracy_ci"]
    assert f"| math/on/accuracy | 0.75 [{lo:.2f}, {hi:.2f}] |" in md
    assert "| math/on/n | 4 | 4 |" in md and "| n_prompts | 6 | 6 |" in md
    delta_rows = [line for line in rest.splitlines() if line.startswith("| ") and "slice" not in line]
    assert len(delta_rows) == len(deltas(items)["init"])
    all_all = next(r for r in delta_rows if r.startswith("| all/all |"))
    assert "**+0.50" in all_all and all_all.endswith("* |")  # CI excludes 0: marked
    code_budget = next(r for r in delta_rows if r.startswith("| code/budget |"))
    assert "+1.00 [+1.00, +1.00]" in code_budget and "**" not in code_budget  # n=2 < MIN_N: unmarked
    assert to_markdown(results).count("## Deltas") == 0


def test_step_deltas_compare_each_stage_with_its_input(items):
    half = {k: [x / 2 for x in v] for k, v in MODEL.items()}
    chain = {"init": items["init"], "sft": scores("sft", half), "model": items["model"]}
    steps = step_deltas(chain, ["init", "sft", "missing", "model"])
    assert list(steps) == ["sft-init"]  # a pair with a target that was not evaluated is skipped
    steps = step_deltas(chain, ["init", "sft", "model"])
    assert steps["sft-init"] == deltas({"sft": chain["sft"], "init": chain["init"]}, model="sft")["init"]
    assert steps["model-sft"]["all/all"]["delta"] == pytest.approx(steps["sft-init"]["all/all"]["delta"])
    md = to_markdown({t: target_metrics(v) for t, v in chain.items()}, deltas(chain), steps)
    assert "## What each stage changed" in md and "| slice | n | sft-init | model-sft |" in md


def test_marked_needs_ci_off_zero_and_enough_pairs():
    assert marked({"delta": 0.2, "ci": [0.01, 0.4], "n": MIN_N})
    assert not marked({"delta": 0.2, "ci": [-0.01, 0.4], "n": 100})
    assert marked({"delta": -0.2, "ci": [-0.4, -0.01], "n": 50})
    assert not marked({"delta": 1.0, "ci": [1.0, 1.0], "n": MIN_N - 1})


def test_ci_key():
    assert ci_key("math/on/accuracy") == "math/on/accuracy_ci"
    assert ci_key("accuracy_on") == "accuracy_ci_on" and ci_key("think_tokens_off") == "think_tokens_ci_off"


# --- the stage's selection and validation (no model needed) ---


def _rows(split, spec):
    return [{"category": c, "uuid": f"{split}-{c}{i}"} for c, n in spec for i in range(n)]


@given(
    cats=st.lists(st.sampled_from("abc"), max_size=30),
    per=st.none() | st.integers(1, 5),
    caps=st.dictionaries(st.sampled_from("abc"), st.integers(1, 5), max_size=2),
    max_prompts=st.integers(0, 12),
)
def test_cap_rows_keeps_data_order_within_caps_and_round_robins(cats, per, caps, max_prompts):
    from posttrain.evals.rows import cap_rows

    rows = [{"category": c, "i": i} for i, c in enumerate(cats)]
    out = cap_rows(rows, per, caps, max_prompts)
    uncapped = cap_rows(rows, per, caps)
    for c in set(cats):
        mine = [r["i"] for r in uncapped if r["category"] == c]
        want = [r["i"] for r in rows if r["category"] == c][: caps.get(c, per)]
        assert mine == want  # the first N of each category, in data order
    assert {r["i"] for r in out} <= {r["i"] for r in uncapped}
    assert len(out) == (min(max_prompts, len(uncapped)) if max_prompts else len(uncapped))
    if max_prompts and len(out) < len(uncapped):  # round-robin: category counts differ by at most 1 ...
        counts = {c: sum(r["category"] == c for r in out) for c in {r["category"] for r in uncapped}}
        avail = {c: sum(r["category"] == c for r in uncapped) for c in counts}
        short = [c for c in counts if counts[c] < avail[c]]  # ... among those not exhausted
        assert all(counts[c] >= max(counts.values()) - 1 for c in short)


def test_load_rows_joins_splits_and_names_the_key(tmp_path):
    from datasets import Dataset, DatasetDict

    from posttrain.evals.rows import load_rows

    DatasetDict(
        test=Dataset.from_list(_rows("test", [("math", 5), ("code", 1), ("chat", 2)])),
        validation=Dataset.from_list(_rows("v", [("code", 3)])),
    ).save_to_disk(str(tmp_path / "rl"))
    rows = load_rows(tmp_path, "test+validation", per_category=3)
    assert [r["category"] for r in rows].count("math") == 3 and len(rows) == 8
    capped = load_rows(tmp_path, "test+validation", per_category=3, max_prompts=5)
    assert [r["category"] for r in capped] == ["math", "code", "chat", "math", "code"]
    more_math = load_rows(tmp_path, "test", per_category=1, caps={"math": 4})
    assert [r["uuid"] for r in more_math] == [f"test-math{i}" for i in range(4)] + [
        "test-code0",
        "test-chat0",
    ]
    with pytest.raises(PosttrainError, match=r"^stage.eval.split: no split 'tset' in .*rl \(has"):
        load_rows(tmp_path, "tset", 3, where="stage.eval.split")
    with pytest.raises(PosttrainError, match=r"^data: .*missing.rl does not exist"):
        load_rows(tmp_path / "missing")


def test_item_ids_fall_back_to_index_and_stay_unique():
    from posttrain.stages.eval import item_ids

    assert item_ids([{"uuid": "a"}, {}, {"uuid": "a"}, {"uuid": None}]) == ["a", "1", "a#2", "3"]


@pytest.mark.parametrize("modes", [["on", "think"], [], ["on", "on"]])
def test_check_modes_names_the_key(modes):
    from posttrain.stages.eval import check_modes

    with pytest.raises(PosttrainError, match=r"^stage\.eval\.modes: ") as e:
        check_modes(modes, "eval")
    assert "\n" not in str(e.value)
    assert check_modes(["off", "on"], "eval") == ["off", "on"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from([0.0, 1.0]), st.sampled_from(["on", "off"])
        ),
        min_size=1,
        max_size=30,
    )
)
def test_strict_counts_only_well_formed_answers(rows):
    """strict = mean(score * format) on every slice; never above accuracy; equal when all are well-formed."""
    its = [item("model", f"p{i}", "math", m, s, fmt=f) for i, (s, f, m) in enumerate(rows)]
    m = target_metrics(its, modes=["on", "off"])
    for mode in ("on", "off", "all"):
        mine = [(s, f) for s, f, md in rows if mode in (md, "all")]
        if not mine:
            continue
        want = sum(s * f for s, f in mine) / len(mine)
        assert m[f"math/{mode}/strict"] == pytest.approx(want) and m[f"all/{mode}/strict"] == pytest.approx(
            want
        )
        assert m[f"math/{mode}/strict"] <= m[f"math/{mode}/accuracy"] + 1e-12
        lo, hi = m[f"math/{mode}/strict_ci"]
        assert 0 <= lo <= want + 1e-9 and want - 1e-9 <= hi <= 1
    assert m["strict_all"] == m["all/all/strict"]
    if all(f == 1.0 for _, f, _ in rows):
        assert m["strict_all"] == m["accuracy_all"]


def test_strict_deltas_see_the_mode_break(items):
    """A model whose /no_think answers are right but malformed gains accuracy, not strict accuracy."""
    broken = [{**i, "score": 1.0, "format": 0.0} if i["mode"] == "off" else i for i in items["model"]]
    both = {"model": broken, "init": items["init"]}
    acc, strict = deltas(both)["init"], deltas(both, metric="strict")["init"]
    assert acc["math/off"]["delta"] == 1.0 and strict["math/off"]["delta"] == 0.0
    assert strict["math/on"] == acc["math/on"]  # well-formed: the same pairs, the same bootstrap
    steps = step_deltas(both, ["init", "model"], metric="strict")
    assert steps["model-init"] == strict
    md = to_markdown({t: target_metrics(v) for t, v in both.items()}, {"init": acc}, None, {"init": strict})
    assert "strict accuracy (correct *and* well-formed)" in md
    with pytest.raises(ValueError, match="accuracy or strict"):
        deltas(both, metric="exact")


def test_evaluate_batches_by_domain_and_scores_every_item_with_its_own_text(tokenizer):
    """The eval generates each mode's prompts grouped by domain (a math batch stops early), and each
    (uuid, mode) item is scored on the completion of its own prompt."""
    from posttrain.inference.budget import BudgetResult
    from posttrain.stages.eval import evaluate

    rows = [
        {"uuid": f"u{i}", "category": c, "prompt": [{"role": "user", "content": f"What is {i} + 0?"}],
         "metadata": json.dumps({"answer": str(i), "harmful": True})}
        for i, c in enumerate(["safety", "math", "math", "safety", "math"])
    ]  # fmt: skip
    calls: list[list[str]] = []

    def generate(texts, *, budget, progress):
        calls.append(list(texts))
        answers = [t.split("What is ")[1].split(" + 0?")[0] for t in texts]  # echo the prompt's number
        return [
            BudgetResult("", f"\\boxed{{{a}}}", f"\\boxed{{{a}}}", 0, 3, False, "stop", False)
            for a in answers
        ]

    items, samples = evaluate(
        generate, tokenizer, rows, [r["uuid"] for r in rows], target="m", modes=["off"], budget=0
    )
    order = [t.split("What is ")[1].split(" + 0?")[0] for t in calls[0]]
    assert [rows[int(i)]["category"] for i in order] == ["math", "math", "math", "safety", "safety"]
    assert sorted(it["uuid"] for it in items) == sorted(r["uuid"] for r in rows)
    math = {it["uuid"]: it["score"] for it in items if it["category"] == "math"}
    assert math == {"u1": 1.0, "u2": 1.0, "u4": 1.0}  # each scored against its own answer
