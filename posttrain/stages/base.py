"""What the runner hands a stage, what a stage hands back, and TRL argument plumbing shared by
the training stages (one tested place, so recipes cannot drift apart)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from posttrain import PosttrainError


def _never() -> bool:
    return False


@dataclass(frozen=True)
class StageInputs:
    """Everything a stage may read, fixed before it starts (frozen). Paths only: stages load what they
    need themselves. ``callbacks`` go to the Trainer; ``preempted()`` tells ``train_and_save`` that a
    preemption signal stopped training (it then raises ``Preempted``)."""

    name: str
    stage_dir: Path
    checkpoint: str
    data_dir: Path
    seed: int = 0
    trust_remote_code: bool = False
    dtype: str = "float32"
    datasets: dict[str, Path] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)
    resume: bool = False
    report_to: list[str] = field(default_factory=list)
    callbacks: list[Any] = field(default_factory=list)
    deepspeed: dict[str, Any] | None = None
    preempted: Callable[[], bool] = _never

    @property
    def checkpoint_dir(self) -> Path:
        return self.stage_dir / "checkpoint"

    @property
    def trainer_dir(self) -> Path:
        return self.stage_dir / "trainer"


@dataclass
class StageOutputs:
    checkpoint: str
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


def device_defaults(use_cpu: bool | None, bf16: bool | None) -> dict[str, Any]:
    """CPU runs need ``use_cpu=True`` and bf16 off (TRL defaults to bf16)."""
    cpu = (not torch.cuda.is_available()) if use_cpu is None else use_cpu
    if bf16 is None:
        bf16 = (not cpu) and torch.cuda.is_bf16_supported()
    return {"use_cpu": cpu, "bf16": bool(bf16)}


def common_trainer_args(cfg: Any, inputs: StageInputs) -> dict[str, Any]:
    """Keyword arguments every TRL config of a training stage shares."""
    args: dict[str, Any] = dict(
        output_dir=str(inputs.trainer_dir),
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_grad_norm=cfg.max_grad_norm,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        seed=inputs.seed,
        data_seed=inputs.seed,
        report_to=inputs.report_to or "none",
        gradient_checkpointing=cfg.gradient_checkpointing,
        disable_tqdm=False,
        logging_nan_inf_filter=False,  # the HF default hides NaN/inf losses; we want to stop on them
        dataloader_num_workers=0,
        deepspeed=inputs.deepspeed,
        **device_defaults(cfg.use_cpu, cfg.bf16),
    )
    args.update(dict(cfg.trainer_args))
    return args


def make_config(config_cls: type, kwargs: dict[str, Any], stage: str):
    """Build a TRL config; an unknown ``trainer_args`` key names the stage and the key."""
    try:
        return config_cls(**kwargs)
    except TypeError as e:
        raise PosttrainError(f"stage.{stage}.trainer_args: {e}") from None


def peft_config(cfg: Any):
    """LoRA config when ``lora_r > 0`` (``out_proj``/``conv1d`` are not valid NemotronH targets)."""
    if not cfg.lora_r:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_target_modules))


def link_checkpoint(src: str, dst: Path) -> str:
    """Pass a checkpoint through unchanged: ``dst`` becomes a relative symlink to ``src``."""
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    target = Path(src).resolve()
    os.symlink(os.path.relpath(target, dst.parent) if target.exists() else src, dst)
    return str(dst)


def trainer_state(ckpt: str | Path) -> dict[str, Any] | None:
    """A trainer checkpoint's ``trainer_state.json`` (written last by the Trainer), or None when a
    kill cut the save short (missing or not valid JSON)."""
    try:
        return json.loads((Path(ckpt) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None


def last_checkpoint(trainer_dir: Path) -> str | None:
    """The newest complete ``checkpoint-N`` saved by the HF Trainer, if any (a save cut short by a
    kill has no readable ``trainer_state.json`` and is ignored)."""
    ckpts = [p for p in trainer_dir.glob("checkpoint-*") if trainer_state(p) is not None]
    ckpts.sort(key=lambda p: int(p.name.split("-")[-1]))
    return str(ckpts[-1]) if ckpts else None


def trim_metrics(path: Path, step: int) -> None:
    """Keep the ``metrics.jsonl`` records up to ``step`` (the resumed checkpoint's): the Trainer logs
    the later steps again. A last line cut short by a kill is dropped too."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec.get("step"), int) or rec["step"] <= step:
            kept.append(line)
    tmp = path.with_name(f".{path.name}-trim")
    tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)


class HandedOff(Exception):
    """The stage wrote a job for an external trainer (``backend=nemo_rl`` under the Slurm launcher) and
    waits for its checkpoint: the stage stays ``pending`` (not failed) and the process exits 0, so the
    job chained ``afterok`` on this one runs."""

    def __init__(self, message: str, outputs: dict[str, Any]):
        super().__init__(message)
        self.outputs = outputs


class Preempted(Exception):
    """Training stopped on a preemption signal after saving a trainer checkpoint."""

    def __init__(self, step: int):
        super().__init__(f"preempted at step {step}")
        self.step = step


def load_policy(inputs: StageInputs):
    """Load the input checkpoint's model and tokenizer."""
    from posttrain.models import load_model, load_tokenizer

    what = f"stage.{inputs.name}.input"
    model = load_model(
        inputs.checkpoint, dtype=inputs.dtype, trust_remote_code=inputs.trust_remote_code, what=what
    )
    tok = load_tokenizer(inputs.checkpoint, trust_remote_code=inputs.trust_remote_code, what=what)
    return model, tok


def load_resume_weights(model, ckpt: str) -> None:
    """Load a trainer checkpoint's full weights into ``model`` in place, through ``from_pretrained``.

    transformers 5 saves NemotronH under its legacy key names (``backbone.*``) while the live model
    uses ``model.*``; the Trainer's resume loads the raw file non-strictly and so silently keeps the
    *initial* weights (optimizer, scheduler and data position do resume). Loading through
    ``from_pretrained`` applies the key conversion; the Trainer's own load then changes nothing.
    LoRA adapters and DeepSpeed checkpoints are left to the Trainer.
    """
    from transformers import AutoModelForCausalLM

    if hasattr(model, "peft_config") or not any(Path(ckpt).glob("*.safetensors")):
        return
    ref = AutoModelForCausalLM.from_pretrained(ckpt, dtype=next(model.parameters()).dtype)
    model.load_state_dict(ref.state_dict(), strict=True)


def finish_from_checkpoint(trainer, ckpt: str) -> dict[str, Any]:
    """Adopt a trainer checkpoint that already reached ``max_steps`` without training: its weights,
    and its ``TrainerState`` (so ``global_step`` and ``log_history`` are the unbroken run's).

    transformers' ``_run_epoch`` has no check before its first update, so
    ``train(resume_from_checkpoint=...)`` at ``global_step == max_steps`` trains one step too many.
    """
    from transformers import TrainerState

    load_resume_weights(trainer.model, ckpt)
    if hasattr(trainer.model, "peft_config"):
        trainer._load_from_checkpoint(ckpt)
    trainer.state = TrainerState.load_from_json(str(Path(ckpt) / "trainer_state.json"))
    return {"epoch": trainer.state.epoch, "total_flos": trainer.state.total_flos}


def train_and_save(trainer, tokenizer, inputs: StageInputs) -> dict[str, Any]:
    """Train (resuming from the last trainer checkpoint when asked), then save a plain HF checkpoint.

    A resume trims ``metrics.jsonl`` back to the checkpoint's step, a fresh start (an attempt killed
    before its first trainer save) to step 0, so no step is logged twice. A checkpoint already at
    ``max_steps`` (a kill after the last trainer save) is adopted as is (``finish_from_checkpoint``).
    LoRA adapters are merged into the base weights so the output loads with
    ``AutoModelForCausalLM.from_pretrained`` and the next stage needs no conversion.
    """
    from posttrain.models import save_checkpoint

    resume = last_checkpoint(inputs.trainer_dir) if inputs.resume else None
    state = trainer_state(resume) if resume else None
    if trainer.is_world_process_zero():  # rank 0 writes metrics.jsonl; no checkpoint: start from 0
        trim_metrics(inputs.stage_dir / "metrics.jsonl", int(state["global_step"]) if state else 0)
    finished = (
        state is not None
        and 0 < int(state.get("max_steps") or 0) <= int(state["global_step"])
        and any(Path(resume).glob("*.safetensors"))  # else (ZeRO-3 shards) the Trainer must load it
    )
    if finished:
        metrics = finish_from_checkpoint(trainer, resume)
    else:
        if resume:
            load_resume_weights(trainer.model, resume)
        result = trainer.train(resume_from_checkpoint=resume)
        if inputs.preempted():
            raise Preempted(trainer.state.global_step)
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if trainer.is_world_process_zero():
        save_checkpoint(model, tokenizer, inputs.checkpoint_dir)
    metrics["global_step"] = trainer.state.global_step
    metrics["resumed_from"] = resume
    if finished:
        metrics["resumed_at_max_steps"] = True
    return metrics


def load_view(inputs: StageInputs, view: str, split: str, *, categories=(), keep: tuple[str, ...] = ()):
    """A split of a data view (sft / preference / rl), filtered by category, with only ``keep`` columns."""
    from datasets import load_from_disk

    path = inputs.data_dir / view
    if not path.exists():
        raise PosttrainError(f"stage {inputs.name}: data view {path} is missing; rebuild the data")
    ds = load_from_disk(str(path))[split]
    if categories:
        wanted = set(categories)
        ds = ds.filter(lambda c: c in wanted, input_columns="category")
    if keep:
        ds = ds.remove_columns([c for c in ds.column_names if c not in keep])
    if len(ds) == 0:
        raise PosttrainError(
            f"stage {inputs.name}: no {view}/{split} samples for categories {list(categories)}"
        )
    return ds
