"""Map a posttrain SFT / DPO / GRPO stage config onto a NeMo-RL job config (their YAML schema).

The job config is a *child* of NeMo-RL's own example config (``defaults: <nemo_rl_dir>/examples/configs/
{sft,dpo,grpo_math_1B}.yaml``; NeMo-RL's ``load_config`` merges it over the parent), so it carries only
what we set. Every key we set must exist in that parent or be an optional key of their schema
(``OPTIONAL``): ``nemo_rl_keys.json`` lists the parents' key paths at the commit it names, and a key
outside it fails the export (a typo would otherwise be merged in silently).

Every field of our stage config is either mapped (``mapped``: our field -> their key, with the value)
or dropped (``dropped``: our field -> why); ``caveats`` says where a mapped field behaves differently
there. Batch maths:
- SFT/DPO: ``train_global_batch_size = per_device_train_batch_size * gradient_accumulation_steps * world``
  and ``train_micro_batch_size = per_device_train_batch_size``.
- GRPO (TRL counts completions per device): ``num_prompts_per_step = per_device * accum * world /
  num_generations`` and ``train_global_batch_size = num_prompts_per_step * num_generations``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from posttrain import PosttrainError

ALGOS = {"sft": "sft", "dpo": "dpo", "grpo": "grpo"}  # our stage kind -> NeMo-RL algorithm
OPTIONAL = (
    "policy.scheduler",  # NotRequired in NeMo-RL's PolicyConfig, absent from the sft/dpo examples
    "policy.dtensor_cfg.automodel_kwargs",  # free-form kwargs dicts (empty in the examples)
    "policy.generation.vllm_kwargs",
    "policy.tokenizer.chat_template",  # NotRequired in their TokenizerConfig (set in the sft example only)
)
_KEYS = Path(__file__).with_name("nemo_rl_keys.json")


class NotExportable(PosttrainError):
    """A stage that cannot be exported yet (its inputs do not exist); the export lists it and goes on."""


@cache
def schema() -> dict[str, Any]:
    return json.loads(_KEYS.read_text())


@dataclass
class JobConfig:
    algo: str
    values: dict[str, Any] = field(default_factory=dict)  # dotted NeMo-RL key -> value
    mapped: dict[str, str] = field(default_factory=dict)  # our field -> their key(s)
    dropped: dict[str, str] = field(default_factory=dict)  # our field -> why
    caveats: dict[str, str] = field(default_factory=dict)  # mapped field -> how NeMo-RL's behaviour differs

    def set(self, ours: str, theirs: str, value: Any) -> None:
        self.values[theirs] = value
        self.mapped[ours] = f"{self.mapped[ours]}, {theirs}" if ours in self.mapped else theirs

    def drop(self, ours: str, why: str) -> None:
        self.dropped[ours] = why

    def check_keys(self, stage: str) -> None:
        known = set(schema()["configs"][self.algo]["keys"])
        for key in self.values:
            if key not in known and not any(key == o or key.startswith(o + ".") for o in OPTIONAL):
                raise PosttrainError(
                    f"stage.{stage}: NeMo-RL {self.algo} config has no key {key!r} "
                    f"({schema()['source']}); fix posttrain/export/nemo_rl_map.py"
                )

    def nested(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in sorted(self.values.items()):
            node = out
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        return out


def _scheduler(cfg: Any, job: JobConfig) -> None:
    """Warmup (LinearLR from 1/warmup) then constant or cosine, as torch schedulers in their list form."""
    kind = cfg.lr_scheduler_type
    known = kind in ("constant", "constant_with_warmup", "cosine", "linear")
    if not known:
        job.drop("lr_scheduler_type", f"{kind!r} has no mapping; constant after the warmup")
        kind = "constant"
    warm = int(cfg.warmup_steps)
    after = max(1, int(cfg.max_steps) - warm)
    tail = {
        "cosine": {"name": "torch.optim.lr_scheduler.CosineAnnealingLR", "kwargs": {"T_max": after}},
        "linear": {
            "name": "torch.optim.lr_scheduler.LinearLR",
            "kwargs": {"start_factor": 1.0, "end_factor": 0.0, "total_iters": after},
        },
    }.get(kind, {"name": "torch.optim.lr_scheduler.ConstantLR", "kwargs": {"factor": 1.0, "total_iters": 1}})
    sched: list[dict[str, Any]] = [tail]
    if warm > 0:
        first = {
            "name": "torch.optim.lr_scheduler.LinearLR",
            "kwargs": {"start_factor": 1.0 / warm, "end_factor": 1.0, "total_iters": warm},
        }
        sched = [first, tail, {"milestones": [warm]}]
    job.set("warmup_steps", "policy.scheduler", sched)
    if known:
        job.mapped["lr_scheduler_type"] = "policy.scheduler"


def _common(cfg: Any, job: JobConfig, algo: str, dtype: str) -> None:
    """Optimizer, clipping, LoRA, checkpointing and precision: the fields every training stage has."""
    job.set("learning_rate", "policy.optimizer.kwargs.lr", float(cfg.learning_rate))
    job.set("weight_decay", "policy.optimizer.kwargs.weight_decay", float(cfg.weight_decay))
    job.set("max_grad_norm", "policy.max_grad_norm", float(cfg.max_grad_norm))
    job.set("max_steps", f"{algo}.max_num_steps", int(cfg.max_steps))
    job.values[f"{algo}.max_num_epochs"] = 1_000_000  # our trainers stop on max_steps only
    job.set("save_steps", "checkpointing.save_period", int(cfg.save_steps))
    job.set("save_total_limit", "checkpointing.keep_top_k", int(cfg.save_total_limit))
    job.set(
        "gradient_checkpointing",
        "policy.dtensor_cfg.activation_checkpointing",
        bool(cfg.gradient_checkpointing),
    )
    job.set(
        "per_device_train_batch_size", "policy.train_micro_batch_size", int(cfg.per_device_train_batch_size)
    )
    if cfg.lora_r:
        job.set("lora_r", "policy.dtensor_cfg.lora_cfg.enabled", True)
        job.set("lora_r", "policy.dtensor_cfg.lora_cfg.dim", int(cfg.lora_r))
        job.set("lora_alpha", "policy.dtensor_cfg.lora_cfg.alpha", int(cfg.lora_alpha))
        job.drop("lora_target_modules", "NeMo-RL LoRA runs with match_all_linear (every linear layer)")
    else:
        job.drop("lora_r", "0: full fine-tuning, NeMo-RL's default")
        job.drop("lora_alpha", "LoRA off")
        job.drop("lora_target_modules", "LoRA off")
    precision = {"bfloat16": "bfloat16", "float16": "float16"}.get(dtype, "float32")
    if cfg.bf16:
        job.set("bf16", "policy.precision", "bfloat16")
    else:
        job.values["policy.precision"] = precision
        job.drop("bf16", f"{cfg.bf16}: NeMo-RL runs in model.dtype ({precision}); set bf16=true for bfloat16")
    job.drop("logging_steps", "NeMo-RL logs every step")
    job.drop("use_cpu", "NeMo-RL runs on GPUs")
    job.drop("categories", "applied when the job's data was written")
    job.drop("trainer_args", "TRL-only keyword arguments")
    _scheduler(cfg, job)


def _global_batch(cfg: Any, world: int) -> int:
    """Samples per optimizer step (TRL): per device x accumulation x processes."""
    return int(cfg.per_device_train_batch_size) * int(cfg.gradient_accumulation_steps) * world


def _supervised(cfg: Any, algo: str, world: int, dtype: str) -> JobConfig:
    """What SFT and DPO share: the common fields, the global batch and the sequence length."""
    job = JobConfig(algo)
    _common(cfg, job, algo, dtype)
    job.set("gradient_accumulation_steps", "policy.train_global_batch_size", _global_batch(cfg, world))
    job.set("max_length", "policy.max_total_sequence_length", int(cfg.max_length))
    return job


def sft_config(cfg: Any, world: int, dtype: str) -> JobConfig:
    job = _supervised(cfg, "sft", world, dtype)
    job.set("packing", "policy.sequence_packing.enabled", bool(cfg.packing))
    job.drop("packing_strategy", "NeMo-RL packs with its own modified_first_fit_decreasing")
    job.set("eval_steps", "sft.val_period", int(cfg.eval_steps) or int(cfg.max_steps))
    job.drop("assistant_only_loss", "NeMo-RL's sft_processor already masks all but assistant turns")
    job.drop("loss_head", "posttrain's labelled-head loss is TRL-side; NeMo-RL computes the full logits")
    job.drop("only_truncated", "applied when the job's data was written")
    return job


def dpo_config(cfg: Any, world: int, dtype: str) -> JobConfig:
    job = _supervised(cfg, "dpo", world, dtype)
    job.set("beta", "dpo.reference_policy_kl_penalty", float(cfg.beta))
    losses = str(cfg.loss_type).split("+")
    weights = list(cfg.loss_weights) or [1.0] * len(losses)
    if set(losses) - {"sigmoid", "sft"} or "sigmoid" not in losses:
        raise PosttrainError(
            f"stage dpo: loss_type {cfg.loss_type!r} has no NeMo-RL mapping (it runs sigmoid DPO with an "
            "optional SFT term: use sigmoid or sigmoid+sft)"
        )
    w = dict(zip(losses, weights))
    job.set("loss_type", "dpo.preference_loss_weight", float(w["sigmoid"]))
    job.set("loss_weights", "dpo.sft_loss_weight", float(w.get("sft", 0.0)))
    job.drop("dataset_from", "its pairs were written as the job's data")
    return job


def grpo_config(cfg: Any, world: int, dtype: str) -> JobConfig:
    job = JobConfig("grpo")
    _common(cfg, job, "grpo", dtype)
    completions = _global_batch(cfg, world)  # TRL's GRPO batch counts completions
    if completions % int(cfg.num_generations):
        raise PosttrainError(
            f"stage grpo: {completions} completions per step is not a multiple of num_generations "
            f"{cfg.num_generations}"
        )
    job.set("num_generations", "grpo.num_generations_per_prompt", int(cfg.num_generations))
    job.set(
        "per_device_train_batch_size", "grpo.num_prompts_per_step", completions // int(cfg.num_generations)
    )
    job.set("gradient_accumulation_steps", "policy.train_global_batch_size", completions)
    job.set("max_completion_length", "policy.generation.max_new_tokens", int(cfg.max_completion_length))
    job.set("temperature", "policy.generation.temperature", float(cfg.temperature))
    job.set("beta", "loss_fn.reference_policy_kl_penalty", float(cfg.beta))
    job.set("scale_rewards", "grpo.normalize_rewards", str(cfg.scale_rewards) != "none")
    job.values["grpo.use_leave_one_out_baseline"] = False  # TRL's baseline is the group mean, self included
    job.values["grpo.seed"] = None  # filled by the writer (the stage seed)
    rewards = list(cfg.rewards)
    job.set("rewards", "env.math.math_verify_impl", "hf_math_verify")
    job.caveats["rewards"] = (
        f"{rewards}: NeMo-RL's math environment scores math_verify correctness only; posttrain's format "
        "gate (correctness_in_format: no reward for a malformed /think or /no_think answer), length "
        "penalty and non-math verifiers do not run there"
    )
    job.drop("reward_weights", "one environment reward")
    job.drop("length_budget", "no length penalty in NeMo-RL's math environment")
    job.drop("length_slope", "no length penalty in NeMo-RL's math environment")
    job.drop("max_prompts", "applied when the job's data was written")
    job.drop("off_fraction", "applied when the job's data was written (one dataset per mode)")
    for f in ("vllm_mode", "vllm_server_base_url", "vllm_gpu_memory_utilization"):
        job.drop(f, "NeMo-RL always generates with vLLM (policy.generation.vllm_cfg)")
    return job


BUILDERS = {"sft": sft_config, "dpo": dpo_config, "grpo": grpo_config}


def map_stage(kind: str, cfg: Any, world: int = 1, dtype: str = "float32") -> JobConfig:
    if kind not in BUILDERS:
        raise PosttrainError(f"NeMo-RL runs sft, dpo and grpo stages, not {kind!r}")
    job = BUILDERS[kind](cfg, world, dtype)
    ours = [f for f in cfg if f not in ("kind", "input", "seed", "backend")]
    for f in ours:
        if f not in job.mapped and f not in job.dropped:
            job.drop(f, "no NeMo-RL counterpart")
    return job
