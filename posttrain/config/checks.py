"""Value checks on typed stage configs, run by ``build_plan`` before any stage starts.

Hydra and the schemas catch unknown keys and wrong types; these catch values of the right type that a
stage would reject minutes into a run (a reward that does not exist, ``beta <= 0``, a weights list
of the wrong length, ...). Each failure is one ``PosttrainError`` naming the key:
``stage.<name>.<key>: <reason>``. The stages keep their own checks for direct use.

``trainer_args`` keys are left to the stage (``make_config``): the integration tests use an unknown
one on purpose to make a stage fail at run time.
"""

from __future__ import annotations

import math
from typing import Any

from posttrain import PosttrainError

GRPO_REWARDS = (
    "correctness",
    "correctness_in_format",
    "format",
    "length",
    "math_steps",
)  # posttrain.stages.grpo.reward_functions
SCALE_REWARDS = ("group", "batch", "none")  # TRL GRPOConfig.scale_rewards
DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)  # TRL 1.16
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
    "greedy",
)  # transformers.trainer_utils.SchedulerType
PACKING = ("auto", "bfd", "wrapped")
LOSS_HEADS = ("auto", "labelled", "trl")
SPLITS = ("train", "validation", "test")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _min(cfg: Any, lo: float, *keys: str, strict: bool = False) -> list[tuple[str, str]]:
    """``(key, reason)`` for each key whose value is not >= lo (> lo with ``strict``)."""
    op = ">" if strict else ">="
    bad = [k for k in keys if not (_num(cfg[k]) and (cfg[k] > lo if strict else cfg[k] >= lo))]
    return [(k, f"must be {op} {lo:g}, got {cfg[k]}") for k in bad]


def _unit(cfg: Any, key: str) -> list[tuple[str, str]]:
    v = cfg[key]
    return [] if v is None or (_num(v) and 0 <= v <= 1) else [(key, f"must be in [0, 1], got {v}")]


def _one_of(cfg: Any, key: str, allowed: tuple[str, ...]) -> list[tuple[str, str]]:
    return [] if cfg[key] in allowed else [(key, f"unknown value {cfg[key]!r}; use one of {list(allowed)}")]


def mode_errors(modes: list) -> list[tuple[str, str]]:
    """The eval modes check (``posttrain.stages.eval.check_modes``) as ``(key, reason)``."""
    from posttrain.evals.report import MODES

    bad = [m for m in modes if m not in MODES]
    if not bad and modes and len(set(modes)) == len(modes):
        return []
    why = f"unknown mode(s) {bad}" if bad else "empty" if not modes else f"duplicates in {modes}"
    if {"True", "False", True, False} & set(bad):
        why += " (YAML reads a bare on/off as a boolean: quote them, modes: ['on', 'off'])"
    return [("modes", f"{why}; use a non-empty subset of {list(MODES)}")]


def _train(cfg: Any) -> list[tuple[str, str]]:
    out = _min(cfg, 0, "learning_rate", strict=True)
    out += _min(
        cfg,
        1,
        "max_steps",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "save_steps",
        "save_total_limit",
        "logging_steps",
    )
    out += _min(cfg, 0, "warmup_steps", "weight_decay", "max_grad_norm", "lora_r")
    out += _one_of(cfg, "lr_scheduler_type", SCHEDULERS)
    allowed = ("posttrain", "nemo_rl") if cfg.kind in ("sft", "dpo", "grpo") else ("posttrain",)
    out += _one_of(cfg, "backend", allowed)
    if cfg.lora_r > 0:
        out += _min(cfg, 0, "lora_alpha", strict=True)
        out += [] if cfg.lora_target_modules else [("lora_target_modules", "empty with lora_r > 0")]
    return out


def _sft(cfg: Any, world: int) -> list[tuple[str, str]]:
    return (
        _train(cfg)
        + _min(cfg, 1, "max_length")
        + _min(cfg, 0, "eval_steps")
        + _one_of(cfg, "packing_strategy", PACKING)
        + _one_of(cfg, "loss_head", LOSS_HEADS)
    )


def _dpo(cfg: Any, world: int) -> list[tuple[str, str]]:
    out = _train(cfg) + _min(cfg, 0, "beta", strict=True) + _min(cfg, 1, "max_length")
    types = [t.strip() for t in cfg.loss_type.split("+") if t.strip()]
    unknown = [t for t in types if t not in DPO_LOSS_TYPES]
    if not types or unknown:
        out.append(
            (
                "loss_type",
                f"unknown loss type(s) {unknown or [cfg.loss_type]}; use +-joined {list(DPO_LOSS_TYPES)}",
            )
        )
    if cfg.loss_weights and len(cfg.loss_weights) != len(types):
        out.append(("loss_weights", f"{len(cfg.loss_weights)} weights for {len(types)} loss types {types}"))
    out += [("loss_weights", f"weight {w} is not a finite number") for w in cfg.loss_weights if not _num(w)]
    return out


def _grpo(cfg: Any, world: int) -> list[tuple[str, str]]:
    out = _train(cfg) + _min(cfg, 2, "num_generations") + _min(cfg, 1, "max_completion_length")
    out += _min(cfg, 0, "temperature", strict=True) + _min(cfg, 0, "beta", "length_slope", "max_prompts")
    out += _unit(cfg, "off_fraction")
    if cfg.scale_rewards not in SCALE_REWARDS:
        out.append(
            ("scale_rewards", f"unknown value {cfg.scale_rewards!r}; use one of {list(SCALE_REWARDS)}")
        )
    unknown = [r for r in cfg.rewards if r not in GRPO_REWARDS]
    if not cfg.rewards or unknown:
        why = f"unknown reward(s) {unknown}" if unknown else "empty"
        out.append(("rewards", f"{why}; use a subset of {list(GRPO_REWARDS)}"))
    if "length" in cfg.rewards:
        out += _min(cfg, 1, "length_budget")
    if cfg.reward_weights and len(cfg.reward_weights) != len(cfg.rewards):
        n, r = len(cfg.reward_weights), list(cfg.rewards)
        out.append(("reward_weights", f"{n} weights for {len(r)} rewards {r}; give one per reward or none"))
    if cfg.get("vllm_mode") is not None:
        out += _one_of(cfg, "vllm_mode", ("server", "colocate"))
        if cfg.vllm_mode == "server" and not cfg.vllm_server_base_url:
            out.append(("vllm_server_base_url", "required with vllm_mode=server (the `vllm serve` URL)"))
        out += _unit(cfg, "vllm_gpu_memory_utilization")
    overridden = {"generation_batch_size", "steps_per_generation"} & set(cfg.trainer_args)
    batch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world
    if (
        not overridden
        and _num(cfg.num_generations)
        and cfg.num_generations >= 2
        and batch % cfg.num_generations
    ):
        out.append(
            (
                "num_generations",
                f"{cfg.num_generations} does not divide the generation batch {batch} "
                "(per_device_train_batch_size x gradient_accumulation_steps x processes)",
            )
        )
    return out


def _preference(cfg: Any, world: int) -> list[tuple[str, str]]:
    out = _min(cfg, 1, "num_samples", "max_prompts", "max_new_tokens", "batch_size", "max_pairs_per_prompt")
    out += _min(cfg, 0, "temperature", "min_score_gap")
    if _num(cfg.max_samples) and _num(cfg.num_samples) and cfg.max_samples < cfg.num_samples:
        out.append(("max_samples", f"{cfg.max_samples} is below num_samples={cfg.num_samples}"))
    if not (_num(cfg.top_p) and 0 < cfg.top_p <= 1):
        out.append(("top_p", f"must be in (0, 1], got {cfg.top_p}"))
    return out + _one_of(cfg, "engine", ("hf", "vllm")) + _min(cfg, 1, "vllm_concurrency")


def _merge(cfg: Any, world: int) -> list[tuple[str, str]]:
    return (
        [] if _num(cfg.alpha) and 0 <= cfg.alpha <= 1 else [("alpha", f"must be in [0, 1], got {cfg.alpha}")]
    )


def _eval(cfg: Any, world: int) -> list[tuple[str, str]]:
    from posttrain.evals.sweep import check_budgets, parse_budgets

    out = mode_errors(list(cfg.modes))
    out += _min(cfg, 1, "max_per_category", "max_new_tokens", "batch_size")
    out += _min(cfg, 0, "max_prompts", "budget_tokens", "sweep_grace")
    out += _one_of(cfg, "engine", ("hf", "vllm")) + _min(cfg, 1, "vllm_concurrency")
    out += [
        (f"category_caps.{k}", f"must be an integer >= 1, got {v!r}")
        for k, v in dict(cfg.category_caps or {}).items()
        if not isinstance(v, int) or isinstance(v, bool) or v < 1
    ]
    if "budget" in cfg.modes and _num(cfg.budget_tokens) and cfg.budget_tokens > cfg.max_new_tokens:
        out.append(("budget_tokens", f"{cfg.budget_tokens} exceeds max_new_tokens={cfg.max_new_tokens}"))
    parts = [p.strip() for p in cfg.split.split("+")]
    if not all(p in SPLITS for p in parts):
        out.append(("split", f"{cfg.split!r}: use one of {list(SPLITS)}, or several joined by +"))
    if cfg.sweep_budgets:
        try:
            check_budgets(parse_budgets(list(cfg.sweep_budgets)), cfg.max_new_tokens)
        except PosttrainError as e:
            out.append(("sweep_budgets", str(e).split(": ", 1)[-1]))
    return out


def _prune(cfg: Any, world: int) -> list[tuple[str, str]]:
    """Targets on their own; ``build_plan`` checks them against the input model when it can."""
    from posttrain.compress.targets import DEPTH_METHODS, Targets, target_errors

    out = _min(cfg, 1, "calibration_samples", "calibration_max_length", "calibration_batch_size")
    out += _min(cfg, 1, "eval_max_length") + _min(cfg, 0, "eval_max_rows")
    return out + _one_of(cfg, "depth_importance", DEPTH_METHODS) + target_errors(Targets.from_cfg(cfg), None)


def _distill(cfg: Any, world: int) -> list[tuple[str, str]]:
    """The teacher's vocabulary is checked by ``build_plan`` against the input's where both are known."""
    from pathlib import Path

    out = _train(cfg) + _min(cfg, 0, "temperature", strict=True) + _min(cfg, 1, "max_length")
    out += _one_of(cfg, "loss", ("kl", "ce"))
    f = cfg.text_fraction
    if not (_num(f) and 0 <= f < 1):
        return out + [("text_fraction", f"must be in [0, 1), got {f}")]
    if f > 0 and not cfg.text_path:
        why = "needs a plain-text source: set text_path to a .jsonl file of {text} rows (the recipe has none)"
        out.append(("text_fraction", f"{f} {why}"))
    elif f > 0 and not Path(cfg.text_path).expanduser().is_file():
        out.append(("text_path", f"{cfg.text_path} is not a file"))
    return out


CHECKS = {
    "sft": _sft,
    "dpo": _dpo,
    "grpo": _grpo,
    "preference": _preference,
    "merge": _merge,
    "eval": _eval,
    "prune": _prune,
    "distill": _distill,
}


def check_stage(name: str, cfg: Any, *, world: int = 1) -> None:
    """Raise ``PosttrainError("stage.<name>.<key>: <reason>")`` for the first bad value of ``cfg``."""
    for key, why in CHECKS.get(cfg.kind, lambda *_: [])(cfg, world):
        raise PosttrainError(f"stage.{name}.{key}: {why}")
