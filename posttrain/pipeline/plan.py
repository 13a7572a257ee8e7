"""Turn a composed config into an ordered, validated plan of stages (before any work starts).

``build_plan`` checks keys, stage kinds, references and every value a stage or the data build would
reject later (``posttrain.config.checks``; the data recipe's own ``__post_init__``; local source
paths), so a bad config fails in seconds with the key's name, before the init model or the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from posttrain import PosttrainError
from posttrain.config.checks import check_stage
from posttrain.config.schema import STAGE_SCHEMAS

INIT = "init"
DTYPES = ("float32", "bfloat16", "float16")  # posttrain.models.factory


@dataclass
class PlannedStage:
    name: str
    kind: str
    index: int
    cfg: Any  # typed DictConfig of the stage's schema
    input: str  # a stage name (incl. "init") or an external path / hub id
    refs: dict[str, str] = field(default_factory=dict)  # role -> stage name or external ref

    @property
    def dirname(self) -> str:
        return f"{self.index:02d}_{self.name}"

    def deps(self, names: set[str]) -> list[str]:
        return [r for r in [self.input, *self.refs.values()] if r in names]


def check_keys(node: Any, schema: type, path: str) -> None:
    """Reject keys that are not fields of ``schema`` (recursing into nested dataclasses).

    Hydra's ``+key=value`` can append a key to a structured node; this catches it before any work.
    """
    import dataclasses
    import typing

    if not isinstance(node, DictConfig):
        return
    hints = typing.get_type_hints(schema)
    names = {f.name for f in dataclasses.fields(schema)}
    for key in node.keys():
        if key not in names:
            raise PosttrainError(f"{path}.{key}: unknown key (not a field of {schema.__name__})")
        sub = hints.get(key)
        if dataclasses.is_dataclass(sub):
            check_keys(node[key], sub, f"{path}.{key}")
        elif typing.get_origin(sub) is list and node[key] is not None:
            (arg,) = typing.get_args(sub) or (None,)
            if dataclasses.is_dataclass(arg):
                for i, item in enumerate(node[key]):
                    check_keys(item, arg, f"{path}.{key}[{i}]")


def check_root(cfg: DictConfig) -> None:
    from posttrain.config.schema import RootConfig

    for key in ("pipeline", "model", "data", "launcher", "logger"):
        check_keys(cfg[key], typing_hint(RootConfig, key), key)


def check_values(cfg: DictConfig) -> None:
    """Model, logger and data values (the stages' are checked one by one in ``build_plan``)."""
    from data_recipes.errors import DataError
    from data_recipes.sources import local_files
    from posttrain.models.initial import check_model_config

    check_model_config(cfg.model)
    if cfg.model.dtype not in DTYPES:
        raise PosttrainError(f"model.dtype: unknown dtype {cfg.model.dtype!r}; use one of {list(DTYPES)}")
    if cfg.logger.kind not in ("jsonl", "wandb"):
        raise PosttrainError(f"logger.kind: unknown logger {cfg.logger.kind!r}; use jsonl or wandb")
    try:
        recipe = OmegaConf.to_object(cfg.data)  # runs RecipeConfig/SourceConfig.__post_init__
        for i, src in enumerate(recipe.sources):
            try:
                local_files(src)
            except DataError as e:
                raise DataError("recipe", f"sources[{i}].path", f"{e.where}: {e.reason}") from None
    except DataError as e:
        raise PosttrainError(f"data.{e.field}: {e.reason}") from None
    except OmegaConfBaseException as e:
        raise PosttrainError(f"data: {str(e).splitlines()[0]}") from None


def world_size(cfg: DictConfig) -> int:
    """Training processes per stage under this launcher (GRPO's generation batch spans them)."""
    kind = cfg.launcher.kind
    return 1 if kind == "local" else cfg.launcher.nproc * (cfg.launcher.nodes if kind == "slurm" else 1)


def typing_hint(cls: type, key: str) -> type:
    import typing

    return typing.get_type_hints(cls)[key]


def _typed(name: str, node: Any) -> Any:
    if not isinstance(node, DictConfig) or "kind" not in node:
        raise PosttrainError(f"stage.{name}: missing `kind` (one of {', '.join(STAGE_SCHEMAS)})")
    kind = node.kind
    if kind not in STAGE_SCHEMAS:
        raise PosttrainError(
            f"stage.{name}.kind: unknown stage kind {kind!r}; known: {', '.join(STAGE_SCHEMAS)}"
        )
    check_keys(node, STAGE_SCHEMAS[kind], f"stage.{name}")
    try:
        typed = OmegaConf.merge(OmegaConf.structured(STAGE_SCHEMAS[kind]), node)
    except OmegaConfBaseException as e:
        raise PosttrainError(f"stage.{name}: {str(e).splitlines()[0]}") from None
    for key in sorted(OmegaConf.missing_keys(typed)):  # a required field (merge.other, distill.teacher)
        raise PosttrainError(f"stage.{name}.{key}: required; set stage.{name}.{key}=<value>")
    return typed


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in graph.get(n, []):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (c := visit(d)):
                return c
        state[n] = 2
        stack.pop()
        return None

    for n in graph:
        if n not in state and (c := visit(n)):
            return c
    return None


def build_plan(cfg: DictConfig) -> list[PlannedStage]:
    """Validate stage names, kinds, schemas and references; reject cycles and forward references."""
    check_root(cfg)
    order = list(cfg.pipeline.stages)
    if not order:
        raise PosttrainError("pipeline.stages: empty; list the stages to run")
    if len(set(order)) != len(order) or INIT in order:
        raise PosttrainError(f"pipeline.stages: names must be unique and not {INIT!r}: {order}")
    missing = [n for n in order if n not in cfg.stage]
    if missing:
        raise PosttrainError(f"pipeline.stages: no config for stage(s) {missing}; define stage.<name>")
    if cfg.only_stage and cfg.only_stage not in order:
        raise PosttrainError(f"only_stage: {cfg.only_stage!r} is not a stage of this pipeline ({order})")
    check_values(cfg)
    from posttrain.evals.claims import check_claims

    for key, why in check_claims(claims_of(cfg), list(cfg.stage)):
        raise PosttrainError(f"pipeline.{key}: {why}")
    names = set(order) | {INIT}
    plan: list[PlannedStage] = []
    prev = INIT
    for i, name in enumerate(order, start=1):
        scfg = _typed(name, cfg.stage[name])
        check_stage(name, scfg, world=world_size(cfg))
        refs: dict[str, str] = {}
        if scfg.kind == "merge":
            refs["other"] = scfg.other
        if scfg.kind == "distill":
            refs["teacher"] = scfg.teacher
        if scfg.kind == "dpo":
            if scfg.dataset_from not in order:
                raise PosttrainError(
                    f"stage.{name}.dataset_from: {scfg.dataset_from!r} is not a stage of this pipeline"
                )
            refs["dataset"] = scfg.dataset_from
        if scfg.kind == "eval":
            for b in scfg.baselines:
                if b not in names:
                    raise PosttrainError(f"stage.{name}.baselines: {b!r} is not a stage of this pipeline")
                refs[f"baseline:{b}"] = b
        plan.append(PlannedStage(name, scfg.kind, i, scfg, scfg.input or prev, refs))
        prev = name
    graph = {p.name: p.deps(names) for p in plan}
    if cycle := _find_cycle(graph):
        raise PosttrainError(f"stage references form a cycle: {' -> '.join(cycle)}")
    pos = {n: i for i, n in enumerate(order)} | {INIT: -1}
    for p in plan:
        for d in p.deps(names):
            if pos[d] >= pos[p.name]:
                raise PosttrainError(
                    f"stage.{p.name}: refers to {d!r}, which runs later; reorder pipeline.stages"
                )
    check_prune_inputs(plan, cfg)
    check_distill_vocab(plan, cfg)
    return plan


def check_prune_inputs(plan: list[PlannedStage], cfg: DictConfig) -> None:
    """Each prune stage's targets against the model it reads, where that is known without loading
    weights (``compress.targets.input_sizes``); the stage checks again at run time, same messages."""
    from posttrain.compress.targets import Targets, input_sizes, raise_first, target_errors

    stages = {p.name: (p.kind, p.input) for p in plan}
    for p in plan:
        if p.kind == "prune" and (sizes := input_sizes(p.input, stages, cfg.model)) is not None:
            raise_first(target_errors(Targets.from_cfg(p.cfg), sizes), f"stage.{p.name}")


def check_distill_vocab(plan: list[PlannedStage], cfg: DictConfig) -> None:
    """A distill teacher must share the input's vocabulary: checked here when both trace back to the
    same source, or both sizes are known from configs (``compress.targets.input_vocab``); the stage
    checks again at run time with the same message (``vocab_error``)."""
    from posttrain.compress.targets import input_vocab, source_of, vocab_error

    stages = {p.name: (p.kind, p.input) for p in plan}
    for p in plan:
        if p.kind != "distill":
            continue
        teacher, student = p.refs["teacher"], p.input
        if source_of(teacher, stages) == source_of(student, stages) is not None:
            continue
        t, s = input_vocab(teacher, stages, cfg.model), input_vocab(student, stages, cfg.model)
        if t is not None and s is not None and (why := vocab_error(p.name, t, s)):
            raise PosttrainError(why)


def claims_of(cfg: DictConfig) -> list:
    """``pipeline.claims`` as plain data (absent or ``[]`` -> no claims)."""
    claims = cfg.pipeline.get("claims")
    return OmegaConf.to_container(claims, resolve=True) if claims else []
