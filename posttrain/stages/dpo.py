"""DPO stage: TRL ``DPOTrainer`` on the pairs mined on-policy by a ``preference`` stage.

Loss (sigmoid, Rafailov et al.): ``-log σ(β[(log π(y+|x) - log π_ref(y+|x)) - (log π(y-|x) - log π_ref(y-|x))])``.
The reference is a frozen copy of the input checkpoint, so at step 1 the margin is 0 and the
loss is ln 2.
"""

from __future__ import annotations

from datasets import load_from_disk
from trl import DPOConfig, DPOTrainer

from posttrain import PosttrainError
from posttrain.stages.base import (
    StageInputs,
    StageOutputs,
    common_trainer_args,
    load_policy,
    make_config,
    peft_config,
    train_and_save,
)


def load_pairs(cfg, inputs: StageInputs):
    src = inputs.datasets.get(cfg.dataset_from)
    path = (src / "pairs") if src else None
    if path is None or not path.exists():
        raise PosttrainError(
            f"stage.{inputs.name}.dataset_from: no preference pairs at {path}; "
            f"stage {cfg.dataset_from!r} mined none (see its manifest counts)"
        )
    ds = load_from_disk(str(path))
    if cfg.categories:
        wanted = set(cfg.categories)
        ds = ds.filter(lambda c: c in wanted, input_columns="category")
    return ds.remove_columns([c for c in ds.column_names if c not in ("prompt", "chosen", "rejected")])


def run(cfg, inputs: StageInputs) -> StageOutputs:
    model, tok = load_policy(inputs)
    pairs = load_pairs(cfg, inputs)
    args = common_trainer_args(cfg, inputs)
    loss_type = [t.strip() for t in cfg.loss_type.split("+") if t.strip()]
    if cfg.loss_weights and len(cfg.loss_weights) != len(loss_type):
        raise PosttrainError(
            f"stage.{inputs.name}.loss_weights: {len(cfg.loss_weights)} weights for loss types {loss_type}"
        )
    args.update(beta=cfg.beta, loss_type=loss_type, max_length=cfg.max_length)
    args.update(loss_weights=list(cfg.loss_weights) or None)
    trainer = DPOTrainer(
        model=model,
        args=make_config(DPOConfig, args, inputs.name),
        train_dataset=pairs,
        processing_class=tok,
        peft_config=peft_config(cfg),
        callbacks=inputs.callbacks,
    )
    metrics = train_and_save(trainer, tok, inputs)
    metrics["pairs"] = len(pairs)
    return StageOutputs(checkpoint=str(inputs.checkpoint_dir), metrics=metrics)
