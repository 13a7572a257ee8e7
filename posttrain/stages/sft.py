"""SFT stage: TRL ``SFTTrainer`` on the recipe's ``sft`` view (mixed reasoning ON/OFF, with
truncated-thinking samples), assistant-only loss through the chat template's generation tags.

Packing: TRL's padding-free ``bfd`` packing needs mamba-ssm kernels for NemotronH, so ``auto``
picks ``wrapped`` on CPU (sequences concatenated and cut at ``max_length``; Mamba state is not
reset at sample boundaries, a departure from the report's packed SFT on GPU).
Nano 2's three SFT stages map to three ``sft`` stages: full mix packed; ``categories:
[tool_calling]`` unpacked; ``only_truncated: true`` (plus long context at full scale).
"""

from __future__ import annotations

import importlib.util

import torch
from trl import SFTConfig, SFTTrainer

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


def packing_strategy(requested: str) -> str:
    if requested != "auto":
        return requested
    kernels = torch.cuda.is_available() and importlib.util.find_spec("mamba_ssm") is not None
    return "bfd" if kernels else "wrapped"


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
    args.update(
        max_length=cfg.max_length,
        packing=cfg.packing,
        packing_strategy=packing_strategy(cfg.packing_strategy),
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
    return StageOutputs(checkpoint=str(inputs.checkpoint_dir), metrics=metrics)
