"""Declared claims: the expression language (parsed, never eval-ed), its checks, and real manifests."""

from __future__ import annotations

import functools
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posttrain.evals.claims import check_claims, claims_markdown, evaluate, parse
from posttrain.pipeline.manifest import Manifest, save_manifest, write_json_atomic
from posttrain.tracking.report import run_claims

num = st.floats(min_value=-100, max_value=100, allow_nan=False)
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@given(a=num, b=num, k=st.floats(0.1, 2), op=st.sampled_from(sorted(OPS)))
def test_comparison_of_scaled_metrics_follows_python(a, b, k, op):
    metrics = {"eval": {"x": a, "sft.y": b}}
    passed, evidence = evaluate(f"eval.x {op} {k} * eval.sft.y", metrics)
    assert passed is OPS[op](a, k * b)
    assert evidence.startswith("eval.x = ") and "eval.sft.y = " in evidence


@given(lo=num, width=st.floats(0, 10), cut=num)
def test_interval_indexing_chains_and_booleans(lo, width, cut):
    m = {"eval": {"ci": [lo, lo + width], "d": lo + width / 2}}
    assert evaluate("eval.ci[0] > 0", m)[0] is (lo > 0)
    assert evaluate("eval.ci[0] <= eval.d <= eval.ci[1]", m)[0] is (lo <= lo + width / 2 <= lo + width)
    assert evaluate(f"eval.ci[0] > {cut} or not eval.ci[1] > {cut}", m)[0] is (
        lo > cut or not lo + width > cut
    )
    assert evaluate("-eval.ci[1] < -eval.ci[0] + 1", m)[0] is (-(lo + width) < -lo + 1)


def test_missing_stage_metric_or_index_is_not_measured():
    m = {"eval": {"ci": [0.1, 0.2], "s": "text"}}
    assert evaluate("grpo.reward_last > 0", m) == (None, "stage 'grpo' not done")
    assert evaluate("eval.nope > 0", m) == (None, "eval.nope not recorded")
    assert evaluate("eval.ci[2] > 0", m)[0] is None
    assert evaluate("eval.s > 0", m)[0] is None


@pytest.mark.parametrize(
    "check",
    [
        "__import__('os').system('true')",
        "eval.x.y() > 0",
        "open('f') and eval.x",
        "[eval.x][0] > 1",
        "eval.x if eval.y else 1",
        "lambda: 1",
        "eval.x >",
        "'a' < eval.x",
        "eval.x ** 2 > 1",
    ],
)
def test_anything_but_the_small_language_is_refused(check):
    with pytest.raises(ValueError):
        parse(check)


def test_declarations_are_checked_against_the_plan():
    ok = {"claim": "c", "check": "eval.x > 0"}
    assert check_claims([ok], ["sft", "eval"]) == []
    errs = check_claims(
        [{"claim": "c"}, {"claim": "c", "check": "dpo.x > 0"}, {"claim": "c", "check": "1 > 0"}, "text"],
        ["sft", "eval"],
    )
    assert [k for k, _ in errs] == ["claims[0]", "claims[1].check", "claims[2].check", "claims[3]"]
    assert "unknown stage(s) ['dpo']" in errs[1][1] and "references no metric" in errs[2][1]


def test_run_claims_reads_the_declared_claims_and_done_manifests_only(tmp_path):
    save_manifest(
        tmp_path / "04_grpo", Manifest(stage="grpo", kind="grpo", status="failed", metrics={"r": 1})
    )
    save_manifest(
        tmp_path / "05_eval", Manifest(stage="eval", kind="eval", status="done", metrics={"a": 0.4})
    )
    claims = [
        {"claim": "accuracy above a third", "check": "eval.a > 0.33"},
        {"claim": "accuracy above a half", "check": "eval.a > 0.5"},
        {"claim": "reward rose", "check": "grpo.r > 0"},
    ]
    assert claims_markdown(run_claims(tmp_path)).startswith("(this run's pipeline declares no claims")
    write_json_atomic(tmp_path / "pipeline.json", {"stages": ["04_grpo", "05_eval"], "claims": claims})
    rows = run_claims(tmp_path)
    assert [r["passed"] for r in rows] == [True, False, None]
    md = claims_markdown(rows)
    assert "| accuracy above a half | **no** | eval.a = 0.400 |" in md and "not measured" in md


@pytest.mark.parametrize("pipeline", ["nano2_tiny", "nano2_smollm", "nano2_smoke"])
def test_shipped_pipelines_declare_claims_that_parse(pipeline):
    from omegaconf import OmegaConf

    from posttrain.config.compose import compose
    from posttrain.pipeline.plan import build_plan

    cfg = compose([f"pipeline={pipeline}"])
    build_plan(cfg)  # validates the claims too
    claims = OmegaConf.to_container(cfg.pipeline.claims)
    assert len(claims) >= 4 and check_claims(claims, list(cfg.stage)) == []


def test_a_pipeline_without_claims_plans():
    from posttrain.config.compose import compose
    from posttrain.pipeline.plan import build_plan

    assert [p.name for p in build_plan(compose(["pipeline=nano2_smoke", "pipeline.claims=[]"]))][-1] == "eval"


def test_a_bad_claim_fails_the_plan_naming_it():
    from posttrain import PosttrainError
    from posttrain.config.compose import compose
    from posttrain.pipeline.plan import build_plan

    with pytest.raises(PosttrainError, match=r"pipeline.claims\[1\].check: unknown stage\(s\) \['evl'\]"):
        build_plan(compose(["pipeline=nano2_tiny", "pipeline.claims.1.check='evl.tokens_off < 1'"]))


share = st.floats(min_value=0, max_value=1)
tokens = st.floats(min_value=1, max_value=200)


@functools.cache
def tiny_claims() -> list:
    from omegaconf import OmegaConf

    from posttrain.config.compose import compose

    return OmegaConf.to_container(compose(["pipeline=nano2_tiny"]).pipeline.claims)


@settings(deadline=None, max_examples=60)
@given(
    on=share,
    off=share,
    i_on=share,
    i_off=share,
    b=share,
    t_on=tokens,
    t_off=tokens,
    first=st.floats(0, 2),
    last=st.floats(0, 2),
    lo=st.floats(-1, 1),
    width=st.floats(0, 1),
)
def test_the_demo_claims_keep_their_old_definitions(
    on, off, i_on, i_off, b, t_on, t_off, first, last, lo, width
):
    """The five claims the library used to hard-code (tracking/claims.py), now declared in nano2_tiny.yaml,
    decide exactly as before."""
    from posttrain.evals.claims import check_all

    claims = tiny_claims()
    ev = {
        "sft.format_on": on,
        "sft.format_off": off,
        "init.format_on": i_on,
        "init.format_off": i_off,
        "format_on": on,
        "format_budget": b,
        "tokens_on": t_on,
        "tokens_off": t_off,
        "delta_vs_sft.accuracy_ci_all": [lo, lo + width],
    }
    got = [
        r["passed"]
        for r in check_all(claims, {"eval": ev, "grpo": {"reward_first": first, "reward_last": last}})
    ]
    old = [on > i_on and off > i_off, t_off <= 0.6 * t_on, b >= on - 0.1, last > first, lo + width >= 0]
    assert got == old
