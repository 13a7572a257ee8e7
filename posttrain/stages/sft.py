"""SFT stage: TRL ``SFTTrainer`` on the recipe's ``sft`` view (mixed reasoning ON/OFF, with
truncated-thinking samples), assistant-only loss through the chat template's generation tags.

Packing: ``auto`` is TRL's padding-free ``bfd`` everywhere: whole samples packed best-fit into rows
of ``max_length``, each sample's attention, conv window and Mamba state starting fresh (on the torch
path through ``posttrain.models.packing``; with mamba-ssm kernels natively). A sample longer than
``max_length`` is cut there, as TRL's ``bfd`` does; the stage counts such samples
(``train_samples_at_max_length``). ``wrapped`` (concatenate and cut, state flowing across samples)
stays as an explicit opt-in and warns.
Nano 2's three SFT stages map to three ``sft`` stages: full mix packed; ``categories:
[tool_calling]`` unpacked; ``only_truncated: true`` (plus long context at full scale).
"""

from __future__ import annotations

import logging

from trl import SFTConfig, SFTTrainer

from posttrain.models import packing
from posttrain.stages.base import (
    StageInputs,
    StageOutputs,
    common_trainer_args,
    load_policy,
    load_view,
    make_config,
    peft_config,
    train_and_save,
)

log = logging.getLogger(__name__)


def packing_strategy(requested: str) -> str:
    """``auto`` -> ``bfd``; ``wrapped`` is honoured with a warning (it lets samples see each other)."""
    if requested == "wrapped":
        log.warning(
            "stage sft: packing_strategy=wrapped concatenates samples and cuts at max_length, so attention "
            "and Mamba state run across sample boundaries; auto (bfd) keeps samples apart"
        )
        return requested
    return "bfd" if requested == "auto" else requested


def packing_counts(train, max_length: int) -> dict[str, int]:
    """Samples and tokens in TRL's packed ``bfd`` dataset, and how many samples were cut at ``max_length``."""
    if "seq_lengths" not in train.column_names:
        return {}
    lengths = [n for row in train["seq_lengths"] for n in row]
    return {
        "train_packed_rows": len(train),
        "train_packed_samples": len(lengths),
        "train_packed_tokens": sum(lengths),
        "train_samples_at_max_length": sum(n >= max_length for n in lengths),
    }


def build_datasets(cfg, inputs: StageInputs):
    keep = ("messages", "tools")
    train = load_view(inputs, "sft", "train", categories=cfg.categories)
    if cfg.only_truncated:
        train = train.filter(lambda t: bool(t), input_columns="truncated")
    train = train.remove_columns([c for c in train.column_names if c not in keep])
    val = load_view(inputs, "sft", "validation", categories=cfg.categories, keep=keep)
    return train, val


def run(cfg, inputs: StageInputs) -> StageOutputs:
    model, tok = load_policy(inputs)
    train, val = build_datasets(cfg, inputs)
    args = common_trainer_args(cfg, inputs)
    strategy = packing_strategy(cfg.packing_strategy)
    if cfg.packing and strategy == "bfd":
        packing.install()  # NemotronH's torch path: reset Mamba state at sample boundaries
        packing.use_varlen_attention(model)  # sdpa per sample, not over the whole packed row
    args.update(
        max_length=cfg.max_length,
        packing=cfg.packing,
        packing_strategy=strategy,
        assistant_only_loss=cfg.assistant_only_loss,
        eval_strategy="steps" if cfg.eval_steps else "no",
        eval_steps=cfg.eval_steps or None,
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
    )
    trainer = SFTTrainer(
        model=model,
        args=make_config(SFTConfig, args, inputs.name),
        train_dataset=train,
        eval_dataset=val,
        processing_class=tok,
        peft_config=peft_config(cfg),
        callbacks=inputs.callbacks,
    )
    metrics = train_and_save(trainer, tok, inputs)
    metrics.update({f"final_{k}": v for k, v in trainer.evaluate().items() if isinstance(v, (int, float))})
    metrics["train_samples"] = len(train)
    metrics.update(packing_counts(trainer.train_dataset, cfg.max_length) if cfg.packing else {})
    return StageOutputs(checkpoint=str(inputs.checkpoint_dir), metrics=metrics)
