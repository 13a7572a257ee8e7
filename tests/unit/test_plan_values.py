"""Bad stage, model and data values fail when the plan is built, through the real CLI, naming the key,
before any stage (init model, data build, SFT) has run."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posttrain import PosttrainError
from posttrain.cli import compose, main
from posttrain.config.checks import DPO_LOSS_TYPES, GRPO_REWARDS, SCHEDULERS, mode_errors
from posttrain.pipeline.plan import DTYPES, build_plan

MERGE = ["+stage@stage.merge=merge", "stage.merge.other=sft", "pipeline.stages=[sft,merge]"]
CASES = [
    (["stage.grpo.rewards=[bogus]"], "stage.grpo.rewards", "unknown reward(s) ['bogus']"),
    (["stage.grpo.rewards=[]"], "stage.grpo.rewards", "empty"),
    (["stage.grpo.reward_weights=[1.0]"], "stage.grpo.reward_weights", "1 weights for 2 rewards"),
    (["stage.grpo.num_generations=1"], "stage.grpo.num_generations", "must be >= 2"),
    (
        ["stage.grpo.num_generations=3"],
        "stage.grpo.num_generations",
        "does not divide the generation batch 32",
    ),
    (["stage.grpo.temperature=0"], "stage.grpo.temperature", "must be > 0"),
    (["stage.grpo.scale_rewards=std"], "stage.grpo.scale_rewards", "unknown value 'std'"),
    (["stage.grpo.beta=-0.1"], "stage.grpo.beta", "must be >= 0"),
    (["stage.grpo.vllm_mode=remote"], "stage.grpo.vllm_mode", "unknown value 'remote'"),
    (["stage.grpo.vllm_mode=server"], "stage.grpo.vllm_server_base_url", "required with vllm_mode=server"),
    (["stage.grpo.learning_rate=0"], "stage.grpo.learning_rate", "must be > 0"),
    (["stage.dpo.beta=0"], "stage.dpo.beta", "must be > 0"),
    (["stage.dpo.beta=-1"], "stage.dpo.beta", "must be > 0"),
    (
        ["stage.dpo.loss_type=sigmoid+sft", "stage.dpo.loss_weights=[1.0]"],
        "stage.dpo.loss_weights",
        "1 weights",
    ),
    (["stage.dpo.loss_weights=[1.0,0.5]"], "stage.dpo.loss_weights", "2 weights for 1 loss types"),
    (["stage.dpo.loss_type=sigmoid+bogus"], "stage.dpo.loss_type", "unknown loss type(s) ['bogus']"),
    (["stage.sft.learning_rate=-1e-3"], "stage.sft.learning_rate", "must be > 0"),
    (["stage.sft.max_steps=-1"], "stage.sft.max_steps", "must be >= 1"),
    (["stage.sft.per_device_train_batch_size=0"], "stage.sft.per_device_train_batch_size", "must be >= 1"),
    (["stage.sft.lr_scheduler_type=cosin"], "stage.sft.lr_scheduler_type", "unknown value 'cosin'"),
    (["stage.sft.packing_strategy=tight"], "stage.sft.packing_strategy", "unknown value 'tight'"),
    (["stage.preference.temperature=-0.5"], "stage.preference.temperature", "must be >= 0"),
    (["stage.preference.num_samples=0"], "stage.preference.num_samples", "must be >= 1"),
    (["stage.preference.max_samples=2"], "stage.preference.max_samples", "below num_samples=4"),
    (["stage.preference.top_p=0"], "stage.preference.top_p", "must be in (0, 1]"),
    (["stage.preference.engine=sglang"], "stage.preference.engine", "unknown value 'sglang'"),
    ([*MERGE, "stage.merge.alpha=1.5"], "stage.merge.alpha", "must be in [0, 1], got 1.5"),
    ([*MERGE, "stage.merge.alpha=-0.1"], "stage.merge.alpha", "must be in [0, 1]"),
    (["stage.eval.modes=[on,bogus]"], "stage.eval.modes", "unknown mode(s) ['bogus']"),
    (["stage.eval.modes=[]"], "stage.eval.modes", "empty"),
    (["stage.eval.modes=[on,on]"], "stage.eval.modes", "duplicates"),
    (["stage.eval.sweep_budgets=[0,-4]"], "stage.eval.sweep_budgets", "must be >= 0, got -4"),
    (["stage.eval.sweep_budgets=[0,9999]"], "stage.eval.sweep_budgets", "exceeds max_tokens"),
    (["stage.eval.budget_tokens=-1"], "stage.eval.budget_tokens", "must be >= 0"),
    (["stage.eval.split=heldout"], "stage.eval.split", "'heldout'"),
    (["stage.eval.max_new_tokens=0"], "stage.eval.max_new_tokens", "must be >= 1"),
    (["+stage.eval.category_caps.math=0"], "stage.eval.category_caps.math", "must be an integer >= 1"),
    (["model.dtype=float8"], "model.dtype", "unknown dtype 'float8'"),
    (["model.kind=onnx"], "model.kind", "unknown kind 'onnx'"),
    (["logger.kind=tensorboard"], "logger.kind", "unknown logger"),
    (["data.off_fraction=1.5"], "data.off_fraction", "must be in [0, 1]"),
    (["data.sources=[{path: /nonexistent/x.jsonl}]"], "data.sources[0].path", "no such file or directory"),
    (["data.sources=[{path: x.jsonl, take: most}]"], "data.sources.take", "'most'"),
    (["only_stage=nope"], "only_stage", "'nope' is not a stage"),
]
if "off_fraction" in compose([]).stage.grpo:  # the field landed on main with GRPO mode mixing
    CASES.append((["stage.grpo.off_fraction=1.5"], "stage.grpo.off_fraction", "must be in [0, 1], got 1.5"))


@pytest.mark.parametrize(("overrides", "key", "why"), CASES, ids=[c[1] + ":" + c[2][:12] for c in CASES])
def test_build_plan_names_the_key(overrides, key, why):
    with pytest.raises(PosttrainError) as e:
        build_plan(compose(overrides))
    assert str(e.value).startswith(f"{key}: ") and why in str(e.value), str(e.value)


@pytest.mark.parametrize(("overrides", "key", "why"), CASES[::4], ids=[c[1] for c in CASES[::4]])
def test_cli_fails_in_seconds_before_any_stage(overrides, key, why, tmp_path, capsys):
    run_dir = tmp_path / "run"
    t0 = time.time()
    with pytest.raises(SystemExit) as e:
        main(["run", f"run_dir={run_dir}", *overrides])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"error: {key}: " in err and "Traceback" not in err
    assert time.time() - t0 < 30
    assert not [p.name for p in run_dir.iterdir() if not p.name.startswith((".hydra", "cli.log"))]


def test_default_pipelines_pass_the_checks():
    for name in ("nano2_tiny", "nano2_smoke", "nano2_smollm", "nano2_tiny_notrunc"):
        assert build_plan(compose([f"pipeline={name}"]))


def test_subprocess_cli_data_error_is_one_line(tmp_path):
    """A DataError raised by the build (after planning) reaches the user as one line, exit 2."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    env_cmd = [sys.executable, "-m", "posttrain.cli"]
    out = subprocess.run(
        [
            *env_cmd,
            "data",
            "build",
            "recipe=nano2_tiny",
            f"out={tmp_path / 'o'}",
            f"sources=[{{path: {empty}}}]",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"error: {empty}: sources.path: empty file: no records"]
    out = subprocess.run(
        [*env_cmd, "run", f"run_dir={tmp_path / 'r'}", "stage.grpo.rewards=[bogus]"],
        capture_output=True,
        text=True,
    )
    assert (
        out.returncode == 2 and "Traceback" not in out.stderr and "error: stage.grpo.rewards: " in out.stderr
    )
    assert not (tmp_path / "r" / "00_init").exists() and not (tmp_path / "r" / "data").exists()


def test_run_with_a_bad_record_stops_at_the_data_build_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"uuid": "x"}\n')
    with pytest.raises(SystemExit) as e:
        main(["run", f"run_dir={tmp_path / 'r'}", f"data.sources=[{{path: {bad}}}]"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"error: {bad}:1: license: missing required field" in err
    assert "Traceback" not in err and not (tmp_path / "r" / "01_sft").exists()


def test_constants_match_the_libraries():
    import dataclasses

    from transformers.trainer_utils import SchedulerType
    from trl import DPOConfig

    from posttrain.models.factory import _DTYPES
    from posttrain.stages.grpo import reward_functions

    assert set(SCHEDULERS) == {s.value for s in SchedulerType} and set(DTYPES) == set(_DTYPES)
    assert all(
        t in {f.name: f for f in dataclasses.fields(DPOConfig)}["loss_type"].metadata["help"]
        for t in DPO_LOSS_TYPES
    )
    cfg = compose(["stage.grpo.rewards=[" + ",".join(GRPO_REWARDS) + "]"]).stage.grpo
    assert len(reward_functions(cfg, None)) == len(GRPO_REWARDS)


@given(st.lists(st.sampled_from(["on", "off", "budget", "bogus", "True", ""]), max_size=4))
def test_mode_check_agrees_with_the_eval_stage(modes):
    from posttrain.stages.eval import check_modes

    try:
        check_modes(modes, "eval")
        stage_ok = True
    except PosttrainError as e:
        stage_ok, stage_msg = False, str(e)
    errors = mode_errors(modes)
    assert (not errors) == stage_ok
    if errors:
        assert stage_msg == f"stage.eval.{errors[0][0]}: {errors[0][1]}"
