"""Prune stage: Minitron-style structured pruning of the input NemotronH or Llama model, one shot.

Importance is measured on ``calibration_samples`` rows of the recipe's ``sft`` train split (a seeded
shuffle), rendered with the checkpoint's chat template and cut at ``calibration_max_length`` tokens
(``posttrain.compress.importance``: norm outputs, ``down_proj`` inputs, the Mamba ``x`` slice, each
attention head's output; depth by 1 - cos or by the logit MSE of skipping each layer). Every axis is
then cut to its target at once from those scores of the full model (``posttrain.compress.prune``),
where Nano 2 pruned depth first and then re-scored the widths; distillation is another stage.

Outputs: ``checkpoint/`` (a plain HF checkpoint of the same class, its config rewritten:
``hybrid_override_pattern`` / ``num_hidden_layers`` and the kept widths), ``importance.json`` (every
score, for inspection) and the metrics ``params_before``, ``params_after``, ``removed_layers``
(original numbering), ``kept`` (the new sizes), and what the cut cost: ``initial_eval_loss`` (the
input model) and ``final_eval_loss`` (the pruned one), the token-mean cross-entropy on the assistant
tokens of the sft validation split (``posttrain.compress.kd.heldout``, the quantity a distill stage's
``final_eval_loss`` is, at the same ``max_length``), with ``eval_tokens`` scored.
"""

from __future__ import annotations

import json

import torch

from data_recipes.parallel import render
from posttrain.compress import kd
from posttrain.compress.importance import importance
from posttrain.compress.prune import prune
from posttrain.compress.targets import Targets, raise_first, sizes_of, target_errors
from posttrain.models import save_checkpoint
from posttrain.pipeline.manifest import write_json_atomic
from posttrain.stages.base import StageInputs, StageOutputs, load_policy, load_view


def calibration_texts(inputs: StageInputs, tok, n: int) -> list[str]:
    """``n`` rows of the sft train split (seeded shuffle), as the chat template renders them."""
    rows = load_view(inputs, "sft", "train", keep=("messages", "tools")).shuffle(seed=inputs.seed)
    rows = rows.select(range(min(n, len(rows))))
    return [render(tok, {"messages": r["messages"], "metadata": {"tools": _tools(r["tools"])}}) for r in rows]


def _tools(raw: str | None):
    return json.loads(raw) if raw else None


def calibration_batches(tok, texts: list[str], *, max_length: int, batch_size: int) -> list[dict]:
    """Right-padded batches (padding is masked out of every score)."""
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tok(
            texts[i : i + batch_size],
            add_special_tokens=False,
            truncation=True,
            max_length=max_length,
            padding="longest",
            padding_side="right",
            return_tensors="pt",
        )
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return out


def heldout_batches(cfg, inputs: StageInputs, tok) -> list[dict]:
    """The sft validation rows (the first ``eval_max_rows``, in order), collated as distill does."""
    rows = load_view(inputs, "sft", "validation", keep=("messages", "tools"))
    if cfg.eval_max_rows:
        rows = rows.select(range(min(cfg.eval_max_rows, len(rows))))
    return kd.batches(tok, rows, max_length=cfg.eval_max_length, batch_size=cfg.calibration_batch_size)


def run(cfg, inputs: StageInputs) -> StageOutputs:
    model, tok = load_policy(inputs)
    targets = Targets.from_cfg(cfg)
    raise_first(target_errors(targets, sizes_of(model.config)), f"stage.{inputs.name}")  # as the plan did
    if torch.cuda.is_available():
        model.cuda()
    texts = calibration_texts(inputs, tok, cfg.calibration_samples)
    batches = calibration_batches(
        tok, texts, max_length=cfg.calibration_max_length, batch_size=cfg.calibration_batch_size
    )
    held = heldout_batches(cfg, inputs, tok)
    before = kd.heldout(model, held)
    mse = cfg.depth_importance == "logit_mse" and targets.num_layers is not None
    imp = importance(model, batches, logit_mse=mse)
    write_json_atomic(inputs.stage_dir / "importance.json", imp.to_json())
    new, report = prune(model, targets, imp, depth=cfg.depth_importance, rescale_norms=cfg.rescale_norms)
    after = kd.heldout(new, held)
    save_checkpoint(new.cpu(), tok, inputs.checkpoint_dir)
    metrics = {**report, "calibration_samples": len(texts), "calibration_tokens": imp.tokens}
    metrics |= {
        "initial_eval_loss": before["ce"],
        "final_eval_loss": after["ce"],
        "eval_tokens": after["tokens"],
    }
    return StageOutputs(checkpoint=str(inputs.checkpoint_dir), metrics=metrics)
