"""Golden SFT losses, DPO's ln 2 at step 1, merge interpolation, NaN detection."""

from __future__ import annotations

import json
import math

import pytest
import torch
from datasets import Dataset
from stage_helpers import make_inputs, structured

from posttrain import PosttrainError
from posttrain.config.schema import DPOStageConfig, MergeStageConfig, SFTStageConfig
from posttrain.models import load_model
from posttrain.pipeline.rundir import read_metrics
from posttrain.stages import dpo, merge, sft

pytestmark = pytest.mark.integration

# Fixed-seed fp32 tiny SFT (assistant-only loss) on the hand-made arithmetic data, with the default
# padding-free bfd packing and with the opt-in wrapped packing; regenerate (run this test with -s,
# copy the printed losses) only for an intended change.
GOLDEN_SFT = {1: 8.31858, 2: 7.51560, 3: 6.65038, 4: 6.07009, 5: 5.73677, 6: 5.57607}
GOLDEN_SFT_WRAPPED = {1: 8.31346, 2: 7.45285, 3: 6.63561, 4: 6.10169, 5: 5.78991, 6: 5.62238}


def _sft(tmp_path, init_ckpt, sft_data, steps=6, **kw):
    inputs = make_inputs(tmp_path, init_ckpt, sft_data, name="sft", metrics=True)
    cfg = structured(
        SFTStageConfig,
        max_steps=steps,
        logging_steps=1,
        save_steps=100,
        eval_steps=0,
        max_length=256,
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        **kw,
    )
    out = sft.run(cfg, inputs)
    return out, {
        r["step"]: r["loss"] for r in read_metrics(inputs.stage_dir / "metrics.jsonl")[0] if "loss" in r
    }


@pytest.mark.parametrize(
    "strategy, head, golden",
    [("auto", "auto", GOLDEN_SFT), ("bfd", "trl", GOLDEN_SFT), ("wrapped", "auto", GOLDEN_SFT_WRAPPED)],
)
def test_sft_golden_losses(tmp_path, init_ckpt, sft_data, strategy, head, golden):
    """One golden per packing; the labelled-only head (auto on CPU) and TRL's fused head agree on it."""
    out, losses = _sft(tmp_path, init_ckpt, sft_data, packing_strategy=strategy, loss_head=head)
    print(json.dumps(losses))
    for step, want in golden.items():
        assert losses[step] == pytest.approx(want, rel=2e-3), (step, losses)
    assert load_model(out.checkpoint) is not None
    assert out.metrics["loss_head"] == ("trl" if head == "trl" else "labelled")  # auto on CPU
    if strategy != "wrapped":  # every sample packed whole, and the cut ones counted
        m = out.metrics
        assert m["train_packed_samples"] == m["train_samples"], m
        assert 0 <= m["train_samples_at_max_length"] <= m["train_packed_samples"]
        assert m["train_packed_rows"] < m["train_packed_samples"]


def test_sft_nan_loss_stops_with_clear_message(tmp_path, init_ckpt, sft_data):
    from posttrain.tracking.jsonl import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="loss became"):
        _sft(tmp_path, init_ckpt, sft_data, steps=3, trainer_args={"learning_rate": float("inf")})


def _dpo_inputs(tmp_path, init_ckpt, sft_data):
    pairs = [
        {
            "prompt": f"<SPECIAL_11>User\nq{i}<SPECIAL_12>\n<SPECIAL_11>Assistant\n<think></think>",
            "chosen": f"yes {i}",
            "rejected": f"no {i}",
            "category": "math",
            "reasoning": "off",
        }
        for i in range(16)
    ]
    pref_dir = tmp_path / "pref"
    Dataset.from_list(pairs).save_to_disk(str(pref_dir / "pairs"))
    inputs = make_inputs(
        tmp_path, init_ckpt, sft_data, name="dpo", metrics=True, datasets={"preference": pref_dir}
    )
    return inputs


def test_dpo_loss_at_step_one_is_ln2(tmp_path, init_ckpt, sft_data):
    inputs = _dpo_inputs(tmp_path, init_ckpt, sft_data)
    cfg = structured(
        DPOStageConfig, max_steps=2, logging_steps=1, save_steps=100, per_device_train_batch_size=4
    )
    out = dpo.run(cfg, inputs)
    first = read_metrics(inputs.stage_dir / "metrics.jsonl")[0][0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert out.metrics["pairs"] == 16


@pytest.mark.parametrize("weights", [[1.0, 0.0], [1.0, 1.0]])
def test_dpo_combined_losses_add_the_weighted_nll(tmp_path, init_ckpt, sft_data, weights):
    """``loss_type=sigmoid+sft``: step-1 loss = ln 2 + w_sft * NLL(chosen), ~ln(vocab) at random init."""
    inputs = _dpo_inputs(tmp_path, init_ckpt, sft_data)
    cfg = structured(
        DPOStageConfig,
        max_steps=1,
        logging_steps=1,
        save_steps=100,
        per_device_train_batch_size=4,
        loss_type="sigmoid+sft",
        loss_weights=weights,
    )
    dpo.run(cfg, inputs)
    first = read_metrics(inputs.stage_dir / "metrics.jsonl")[0][0]["loss"]
    if weights[1] == 0:
        assert first == pytest.approx(math.log(2), abs=1e-4)
    else:
        assert first > math.log(2) + 5, first


def test_dpo_loss_weights_must_match_loss_types(tmp_path, init_ckpt, sft_data):
    inputs = _dpo_inputs(tmp_path, init_ckpt, sft_data)
    cfg = structured(DPOStageConfig, max_steps=1, loss_type="sigmoid", loss_weights=[1.0, 1.0])
    with pytest.raises(PosttrainError, match="stage.dpo.loss_weights"):
        dpo.run(cfg, inputs)


def test_merge_interpolates(tmp_path, init_ckpt, sft_data):
    a = load_model(init_ckpt)
    b = load_model(init_ckpt)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    b.save_pretrained(tmp_path / "b")
    inputs = make_inputs(
        tmp_path, init_ckpt, sft_data, name="merge", checkpoints={"other": str(tmp_path / "b")}
    )
    out = merge.run(structured(MergeStageConfig, other="b", alpha=0.25), inputs)
    m = load_model(out.checkpoint)
    for (name, pa), pm in zip(a.named_parameters(), m.parameters()):
        assert torch.allclose(pm, pa + 0.75, atol=1e-5), name
