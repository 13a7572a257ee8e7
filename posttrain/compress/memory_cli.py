"""``posttrain memory model=<name> [context=131072] [batch=1] [gpu=a10g | budget_gib=N] [json=true]``:
the settings (``MemoryConfig``), where the architecture comes from (``load_arch``) and the output. The
planner itself is the pure ``posttrain.compress.memory``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from posttrain import PosttrainError
from posttrain.compress.memory import (
    BYTES,
    GPUS,
    Arch,
    MemoryPlan,
    arch_from_hf,
    arch_from_model_config,
    gpu_budget_gib,
    plan_memory,
)
from posttrain.config.schema import _f

PROG = "posttrain memory"


@dataclass
class MemoryConfig:
    """``posttrain memory model=<name> [context=131072] [batch=1] [gpu=a10g | budget_gib=N] [json=true]``:
    weights + KV cache + Mamba state against a GPU budget (formulas: ``posttrain.compress.memory``)."""

    model: str = _f(
        "???",
        "A shipped model config with architecture fields (nemotron_nano_12b_v2, nemotron_nano_9b_v2, "
        "tiny_nemotron_h), a local HF checkpoint dir (its config.json) or a hub id (transformers AutoConfig).",
    )
    context: int = _f(131072, "Tokens held in the KV cache per sequence.")
    batch: int = _f(1, "Concurrent sequences.")
    dtype: str = _f(
        "bfloat16", "Weights and KV cache dtype (also the Mamba conv state's): float32, bfloat16, float16."
    )
    ssm_cache_dtype: str = _f(
        "float32", "Mamba SSM state dtype (vLLM mamba_ssm_cache_dtype; Nano 2 runs fp32)."
    )
    gpu: str = _f(
        "a10g",
        "GPU whose usable memory sets the budget: "
        + ", ".join(f"{k} ({v} GiB)" for k, v in GPUS.items())
        + ".",
    )
    gpu_memory_utilization: float = _f(
        0.95, "Fraction of the GPU's usable memory the server takes (Nano 2: 0.95)."
    )
    reserve_gib: float = _f(1.3, "GiB left for other residents (Nano 2: its 1.3 GiB vision encoder).")
    budget_gib: float | None = _f(
        None, "Budget in GiB; set, it replaces gpu x gpu_memory_utilization - reserve_gib."
    )
    json: bool = _f(False, "Print the plan as one JSON object instead of a table.")

    def __post_init__(self) -> None:
        for key in ("dtype", "ssm_cache_dtype"):
            if getattr(self, key) not in BYTES:
                raise PosttrainError(
                    f"{PROG}: {key}: unknown dtype {getattr(self, key)!r}; use one of {', '.join(BYTES)}"
                )
        if self.context < 0:
            raise PosttrainError(f"{PROG}: context: must be >= 0, got {self.context}")
        if self.batch < 1:
            raise PosttrainError(f"{PROG}: batch: must be >= 1, got {self.batch}")
        if self.budget_gib is not None and self.budget_gib <= 0:
            raise PosttrainError(f"{PROG}: budget_gib: must be > 0, got {self.budget_gib}")
        if self.budget_gib is None and self.gpu not in GPUS:
            raise PosttrainError(
                f"{PROG}: gpu: unknown gpu {self.gpu!r}; use one of {', '.join(GPUS)} or set budget_gib="
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise PosttrainError(
                f"{PROG}: gpu_memory_utilization: must be in (0, 1], got {self.gpu_memory_utilization}"
            )
        if self.reserve_gib < 0:
            raise PosttrainError(f"{PROG}: reserve_gib: must be >= 0, got {self.reserve_gib}")

    def budget(self) -> float:
        if self.budget_gib is not None:
            return self.budget_gib
        return gpu_budget_gib(self.gpu, self.gpu_memory_utilization, self.reserve_gib)


def _shipped_arch(name: str, path: Path) -> Arch:
    from omegaconf import OmegaConf

    from posttrain.config.schema import ModelConfig

    raw = OmegaConf.load(path)
    raw.pop("defaults", None)
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), raw)
    if cfg.kind != "tiny" and "hybrid_override_pattern" not in raw:
        where = "its imported HF checkpoint dir" if cfg.kind == "gguf" else "a checkpoint dir or hub id"
        raise PosttrainError(
            f"model: shipped config {name!r} (kind={cfg.kind}) has no architecture fields; pass model=<{where}>"
        )
    return arch_from_model_config(cfg)


def load_arch(model: str) -> Arch:
    """``model`` as a shipped model config name, then a local checkpoint dir, then a hub id."""
    from posttrain.config.compose import CONFIG_DIR

    shipped_dir = CONFIG_DIR / "model"
    shipped = shipped_dir / f"{model}.yaml"
    if "/" not in model and shipped.is_file():
        return _shipped_arch(model, shipped)
    local = Path(model).expanduser()
    if local.is_dir() and not (local / "config.json").is_file():
        raise PosttrainError(f"model: {model} is a directory without config.json")
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(str(local) if local.is_dir() else model)
    except Exception as e:  # any failure to load the config is a user error here
        why = f"{type(e).__name__}: " + (str(e).strip().splitlines() or [""])[0]
        if local.is_dir():
            raise PosttrainError(
                f"model: transformers AutoConfig cannot read {local}/config.json ({why})"
            ) from None
        names = ", ".join(sorted(p.stem for p in shipped_dir.glob("*.yaml")))
        raise PosttrainError(
            f"model: {model!r} is not a shipped model config ({names}), a local checkpoint dir or a "
            f"hub id that transformers AutoConfig can load ({why})"
        ) from None
    return arch_from_hf(cfg)


def render_table(p: MemoryPlan) -> str:
    most = "any (no KV cache)" if p.max_context_that_fits is None else f"{p.max_context_that_fits:,} tokens"
    rows = [
        ("weights", p.weights_gib, f"{p.params:,} params in {p.dtype}"),
        ("kv_cache", p.kv_cache_gib, f"{p.context:,} tokens x batch {p.batch}"),
        (
            "mamba_state",
            p.mamba_state_gib,
            f"x batch {p.batch}; conv in {p.dtype}, SSM in {p.ssm_cache_dtype}",
        ),
        ("total", p.total_gib, ""),
        ("budget", p.budget_gib, "fits" if p.fits else "does NOT fit"),
    ]
    lines = [f"memory plan: {p.model}", f"{'component':<12} {'GiB':>9}"]
    lines += [f"{name:<12} {gib:>9.3f}  {note}".rstrip() for name, gib, note in rows]
    return "\n".join([*lines, f"max context that fits: {most}"])


def memory_main(argv: list[str]) -> int:
    """``posttrain memory ...`` (``--json`` is ``json=true``)."""
    from posttrain.config.commands import parse_command

    argv = ["json=true" if a == "--json" else a for a in argv]
    cfg = parse_command(MemoryConfig, argv, PROG)
    if cfg is None:
        return 0
    try:
        arch = load_arch(cfg.model)
    except PosttrainError as e:
        raise PosttrainError(f"{PROG}: {e}") from None
    plan = plan_memory(
        arch,
        context=cfg.context,
        batch=cfg.batch,
        budget_gib=cfg.budget(),
        dtype=cfg.dtype,
        ssm_cache_dtype=cfg.ssm_cache_dtype,
        model=cfg.model,
    )
    print(json.dumps(asdict(plan), indent=2) if cfg.json else render_table(plan))
    return 0
