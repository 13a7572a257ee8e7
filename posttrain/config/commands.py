"""Structured configs of the commands other than ``run``, and their one ``key=value`` grammar.

``posttrain eval budget``, ``ablate truncation``, ``nas``, ``status``, ``report``, ``serve`` and ``data inspect`` read
their settings with
``parse_command`` (``bench/budget.py`` takes the sweep defaults from ``SweepConfig``). It merges ``key=value`` arguments (OmegaConf dotlist syntax: lists as
``[0,8,null]``) into the command's dataclass in struct mode. An unknown key fails, naming the key; a
wrong type fails, naming the key and the value. ``--help`` prints each field's help text. The budget
sweep's settings are defined once, in ``SweepConfig``, and every sweep uses those defaults.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from posttrain import PosttrainError
from posttrain.config.schema import SweepConfig, _f

__all__ = [
    "COMMANDS",
    "AblateConfig",
    "EvalBudgetConfig",
    "InspectConfig",
    "NasConfig",
    "ReportConfig",
    "ServeConfig",
    "StatusConfig",
    "SweepConfig",
    "parse_command",
    "register_commands",
    "usage",
]


@dataclass
class EvalBudgetConfig(SweepConfig):
    """``posttrain eval budget <checkpoint> out=<dir> data=<data dir> [key=value ...]``."""

    checkpoint: str = _f("???", "HF checkpoint dir (positional).")
    out: str = _f("???", "Output dir for budget.json, budget.md and budget.png.")
    data: str = _f("???", "Data dir with an rl/ view (a run's <run_dir>/data).")
    dtype: str = _f("float32", "Model dtype.")


@dataclass
class AblateConfig(SweepConfig):
    """``posttrain ablate truncation out=<dir> [key=value ...] [-- hydra overrides]``."""

    out: str = _f("???", "Output dir: one run dir per seed and variant, ablation.{json,md,png}.")
    stages: str = _f("sft", "Train `sft` only, or `all` stages of each variant.")
    seeds: list[int] = _f([0], "Pipeline seeds (model init and data order), e.g. [0,1,2].")


@dataclass
class NasConfig:
    """``posttrain nas out=<dir> [key=value ...] [-- hydra overrides]``: Nano 2's two-phase search
    (``posttrain.compress.nas``) as one pipeline run in ``out``, resumable like any."""

    out: str = _f("???", "Run dir: the teacher, every candidate's prune + distill stages, nas.{json,md}.")
    pipeline: str = _f(
        "nano2_compress",
        "Base pipeline: its model, data, sft stage (the teacher) and the prune / distill settings every "
        "candidate copies.",
    )
    depths: list[int] = _f([6, 7], "Phase 1: layer counts to prune to (Nano 2: 52, 54, 56 of 62).")
    hidden_sizes: list[int] = _f([96, 112], "Phase 2 grid: hidden sizes ([] keeps the teacher's).")
    intermediate_sizes: list[int] = _f([128, 192], "Phase 2 grid: FFN sizes ([] keeps the teacher's).")
    mamba_num_heads: list[int] = _f([], "Phase 2 grid: Mamba heads per layer ([] keeps the teacher's).")
    num_attention_heads: list[int] = _f([], "Phase 2 grid: query heads ([] keeps the teacher's).")
    context: int = _f(131072, "Memory planner: tokens in the KV cache (Nano 2: 128k).")
    batch: int = _f(1, "Memory planner: concurrent sequences.")
    budget_gib: float | None = _f(
        None, "Memory budget in GiB (Nano 2: 19.66 on an A10G); null: budget_fraction of the teacher's."
    )
    budget_fraction: float = _f(
        0.85, "With budget_gib null: the budget is this share of the teacher's memory at `context`."
    )
    max_candidates: int = _f(3, "Phase 2: distil the fitting candidates that use the most memory, this many.")
    distill_steps: int = _f(30, "Optimizer steps of every candidate's short distillation.")
    tie_tolerance: float = _f(
        0.01, "Held-out losses within this many nats of the best tie; ties are ranked by throughput."
    )
    throughput_batch: int = _f(8, "Decode throughput: sequences per generate call.")
    throughput_tokens: int = _f(32, "Decode throughput: prompt and generated tokens per sequence.")


@dataclass
class StatusConfig:
    """``posttrain status <run_dir> [json=true]``."""

    run_dir: str = _f("???", "A pipeline run directory (positional).")
    json: bool = _f(False, "Print the rows as JSON instead of a table.")


@dataclass
class ReportConfig:
    """``posttrain report <run_dir> [claims=true]``: curves and tables to <run_dir>/report."""

    run_dir: str = _f("???", "A pipeline run directory (positional).")
    claims: bool = _f(False, "Also print what the run shows (the demo's claims).")


@dataclass
class ServeConfig:
    """``posttrain serve <checkpoint> [port=8000] [max_concurrency=8] [key=value ...]``: an
    OpenAI-compatible HTTP server over HF generation, bounded by the limits below."""

    checkpoint: str = _f("???", "HF checkpoint dir (positional).")
    host: str = _f("127.0.0.1", "Address to bind.")
    port: int = _f(8000, "Port to bind; 0 picks a free one (printed at start).")
    max_context: int | None = _f(None, "Context length; null = the model's.")
    served_model_name: str | None = _f(None, "Model name in the API; null = the checkpoint dir's name.")
    dtype: str = _f("float32", "Model dtype.")
    max_body_bytes: int = _f(1 << 20, "Larger request bodies get 413.")
    max_concurrency: int = _f(8, "Requests running or waiting for the model; more get 503.")
    max_connections: int = _f(64, "Connections handled at once; more get 503 at accept.")
    read_timeout: float = _f(10.0, "Seconds for a request's headers and body to arrive (then 408).")


@dataclass
class InspectConfig:
    """``posttrain data inspect <dir>``: counts, lengths and samples of a built data dir."""

    dir: str = _f("???", "A data dir written by `posttrain data build` (positional).")


COMMANDS: dict[str, type] = {
    "eval_budget": EvalBudgetConfig,
    "ablate": AblateConfig,
    "nas": NasConfig,
    "sweep": SweepConfig,
    "status": StatusConfig,
    "report": ReportConfig,
    "serve": ServeConfig,
    "data_inspect": InspectConfig,
}


def register_commands() -> None:
    """Register every command's schema with Hydra's ConfigStore as ``command/<name>`` (idempotent), next
    to the run schemas (``config/schema.register_configs``): a user config can extend them there."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name, schema in COMMANDS.items():
        cs.store(group="command", name=name, node=schema)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def usage(schema: type, prog: str) -> str:
    """The ``--help`` text: the schema's docstring, then every field with its default and help."""
    lines = [f"usage: {prog}", "", (schema.__doc__ or "").strip(), ""]
    for f in fields(schema):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        lines += [f"  {f.name}={_show(default)}", f"      {f.metadata.get('help', '')}"]
    return "\n".join(lines)


def _registered(schema: type) -> Any:
    """The schema's node in the ConfigStore (``command/<name>``); unregistered schemas are built as is."""
    from hydra.core.config_store import ConfigStore

    name = next((k for k, v in COMMANDS.items() if v is schema), None)
    if name is None:
        return OmegaConf.structured(schema)
    register_commands()
    return ConfigStore.instance().load(f"command/{name}.yaml").node


def parse_command(schema: type, argv: list[str], prog: str, positional: tuple[str, ...] = ()) -> Any:
    """``argv`` (``key=value`` items, plus ``positional`` fields given bare, in order) merged into
    ``schema``. Returns the typed config object, or None after printing ``--help``."""
    if any(a in ("-h", "--help") for a in argv):
        print(usage(schema, prog))
        return None
    bare = [a for a in argv if "=" not in a]
    if len(bare) > len(positional):
        raise PosttrainError(f"{prog}: unexpected argument {bare[len(positional)]!r}; use key=value")
    items = [f"{k}={v}" for k, v in zip(positional, bare)] + [a for a in argv if "=" in a]
    base = _registered(schema)
    try:
        cfg = OmegaConf.merge(base, OmegaConf.from_dotlist(items))
        missing = sorted(OmegaConf.missing_keys(cfg))
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        known = ", ".join(f.name for f in fields(schema))
        first = str(e).strip().splitlines()[0]
        raise PosttrainError(f"{prog}: {key}: {first} (keys: {known})") from None
    if missing:
        raise PosttrainError(f"{prog}: {missing[0]}: required; see `{prog} --help`")
    return OmegaConf.to_object(cfg)
