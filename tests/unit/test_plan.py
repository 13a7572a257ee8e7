"""Pipeline planning rejects bad stage graphs at config time; fingerprints behave."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posttrain import PosttrainError
from posttrain.cli import compose
from posttrain.pipeline.fingerprint import fingerprint
from posttrain.pipeline.plan import build_plan


def test_default_plan_chains_previous_stage():
    plan = build_plan(compose([]))
    assert [(p.name, p.input) for p in plan] == [
        ("sft", "init"),
        ("preference", "sft"),
        ("dpo", "preference"),
        ("grpo", "dpo"),
        ("eval", "grpo"),
    ]
    assert plan[2].refs == {"dataset": "preference"}
    assert [p.dirname for p in plan][:2] == ["01_sft", "02_preference"]


def test_unknown_stage_kind_rejected():
    cfg = compose(["+stage.foo={kind: nosuch}", "pipeline.stages=[sft,foo]"])
    with pytest.raises(PosttrainError, match=r"stage\.foo\.kind: unknown stage kind 'nosuch'"):
        build_plan(cfg)


def test_cycle_in_references_rejected():
    cfg = compose(["stage.sft.input=dpo", "stage.dpo.input=sft", "pipeline.stages=[sft,preference,dpo]"])
    with pytest.raises(PosttrainError, match="cycle"):
        build_plan(cfg)


def test_forward_reference_rejected():
    cfg = compose(
        ["pipeline.stages=[sft,preference]", "stage.preference.input=init", "stage.sft.input=preference"]
    )
    with pytest.raises(PosttrainError, match="runs later"):
        build_plan(cfg)


def test_missing_stage_config_rejected():
    with pytest.raises(PosttrainError, match="no config for stage"):
        build_plan(compose(["pipeline.stages=[sft,nothere]"]))


def test_external_input_and_named_input():
    plan = build_plan(compose(["stage.grpo.input=sft", "stage.sft.input=/models/base"]))
    by = {p.name: p for p in plan}
    assert by["grpo"].input == "sft" and by["sft"].input == "/models/base"


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=10,
)


@given(cfg=st.dictionaries(st.text(min_size=1, max_size=6), values, min_size=1, max_size=6))
def test_fingerprint_stable_and_sensitive(cfg):
    assert fingerprint(cfg) == fingerprint(dict(reversed(list(cfg.items()))))
    key = next(iter(cfg))
    changed = {**cfg, key: ["changed", cfg[key]]}
    assert fingerprint(changed) != fingerprint(cfg)


def test_stage_fingerprint_changes_with_any_field():
    from posttrain.pipeline.runner import stage_fingerprint

    base = build_plan(compose([]))
    other = build_plan(compose(["stage.dpo.beta=0.2"]))
    fps = lambda plan: [stage_fingerprint(p, {"input": "x"}, "d") for p in plan]  # noqa: E731
    a, b = fps(base), fps(other)
    assert [x == y for x, y in zip(a, b)] == [True, True, False, True, True]
    assert stage_fingerprint(base[0], {"input": "x"}, "d2") != a[0]
    assert stage_fingerprint(base[0], {"input": "y"}, "d") != a[0]
    assert stage_fingerprint(base[0], {"input": "x"}, "d", seed=1) != a[0]  # the global seed counts


def test_a_stage_seed_reruns_that_stage_and_its_dependants_only():
    from posttrain.pipeline.runner import plan_fingerprints, stage_seed

    base = build_plan(compose([]))
    reseeded = build_plan(compose(["stage.grpo.seed=1"]))
    a, b = plan_fingerprints(base, "i", "d"), plan_fingerprints(reseeded, "i", "d")
    names = [p.name for p in base]
    first = names.index("grpo")
    assert [a[n] == b[n] for n in names] == [i < first for i in range(len(names))]
    assert [stage_seed(p, 7) for p in reseeded] == [1 if p.name == "grpo" else 7 for p in reseeded]
