"""The demo's claims are read from real manifests (written by the runner's own manifest code)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from posttrain.pipeline.manifest import Manifest, save_manifest
from posttrain.tracking.claims import FEWER, KEEP, checks_markdown, demo_checks

share = st.floats(min_value=0, max_value=1)
tokens = st.floats(min_value=1, max_value=200)


def _run(tmp, ev: dict | None, grpo: dict | None, status: str = "done"):
    if grpo is not None:
        save_manifest(tmp / "04_grpo", Manifest(stage="grpo", kind="grpo", status=status, metrics=grpo))
    if ev is not None:
        save_manifest(tmp / "05_eval", Manifest(stage="eval", kind="eval", status="done", metrics=ev))
    return {r["claim"].split()[0]: r for r in demo_checks(tmp)}


@settings(max_examples=40, deadline=None)
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
    sft=st.booleans(),
    lo=st.floats(-1, 1),
    width=st.floats(0, 1),
)
def test_checks_follow_their_definitions(
    tmp_path_factory, on, off, i_on, i_off, b, t_on, t_off, first, last, sft, lo, width
):
    tmp = tmp_path_factory.mktemp("run")
    pre = "sft." if sft else ""
    ev = {
        f"{pre}format_on": on,
        f"{pre}format_off": off,
        "init.format_on": i_on,
        "init.format_off": i_off,
        "format_on": on,
        "format_budget": b,
        "tokens_on": t_on,
        "tokens_off": t_off,
        "delta_vs_sft.accuracy_all": lo + width / 2,
        "delta_vs_sft.accuracy_ci_all": [lo, lo + width],
    }
    c = _run(tmp, ev, {"reward_first": first, "reward_last": last})
    assert c["SFT"]["passed"] == (on > i_on and off > i_off)
    assert c["SFT"]["evidence"].startswith("sft" if sft else "model")
    assert c["/no_think"]["passed"] == (t_off <= FEWER * t_on)
    assert c["answers"]["passed"] == (b >= on - KEEP)
    assert c["GRPO's"]["passed"] == (last > first)
    assert c["DPO"]["passed"] == (lo + width >= 0)
    assert checks_markdown(list(c.values())).count("\n") == 7


def test_missing_or_unfinished_stages_are_not_a_pass(tmp_path):
    c = _run(tmp_path, None, {"reward_first": 0.1, "reward_last": 0.9}, status="failed")
    assert all(r["passed"] is None for r in c.values()), c
    assert "not measured" in checks_markdown(list(c.values()))
