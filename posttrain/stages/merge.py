"""Merge stage: linear interpolation of two checkpoints, θ = α·θ_input + (1-α)·θ_other.

Nano 2 merged a reasoning-strong and a chat-strong checkpoint with α≈0.5. Both checkpoints must
share the architecture (same parameter names and shapes); the tokenizer comes from ``input``.
"""

from __future__ import annotations

import torch

from posttrain import PosttrainError
from posttrain.models import load_model, save_checkpoint
from posttrain.stages.base import StageInputs, StageOutputs, load_policy


def interpolate(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """α·a + (1-α)·b per tensor; raises on mismatched names or shapes."""
    if a.keys() != b.keys():
        diff = sorted(set(a) ^ set(b))[:5]
        raise PosttrainError(f"merge: checkpoints have different parameters, e.g. {diff}")
    out = {}
    for k, ta in a.items():
        tb = b[k]
        if ta.shape != tb.shape:
            raise PosttrainError(f"merge: parameter {k} has shape {tuple(ta.shape)} vs {tuple(tb.shape)}")
        out[k] = (
            (alpha * ta.float() + (1 - alpha) * tb.float()).to(ta.dtype) if ta.is_floating_point() else ta
        )
    return out


def run(cfg, inputs: StageInputs) -> StageOutputs:
    if not 0.0 <= cfg.alpha <= 1.0:
        raise PosttrainError(f"stage.{inputs.name}.alpha: must be in [0, 1], got {cfg.alpha}")
    model, tok = load_policy(inputs)
    other = load_model(
        inputs.checkpoints["other"],
        dtype=inputs.dtype,
        trust_remote_code=inputs.trust_remote_code,
        what=f"stage.{inputs.name}.other",
    )
    merged = interpolate(model.state_dict(), other.state_dict(), cfg.alpha)
    model.load_state_dict(merged)
    save_checkpoint(model, tok, inputs.checkpoint_dir)
    return StageOutputs(checkpoint=str(inputs.checkpoint_dir), metrics={"alpha": cfg.alpha})
