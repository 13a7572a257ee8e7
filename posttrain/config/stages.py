"""Stage config schemas, one dataclass per stage kind, and ``STAGE_SCHEMAS`` (kind -> schema).

Defaults live here and nowhere else; Hydra validates every ``stage.<name>`` node against its kind's
class, so an unknown key or a wrong type fails at start with a message naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from posttrain.config.fields import _f


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
    drop_zero_advantage: bool = _f(
        False,
        "Leave rows with a zero advantage (groups whose samples all score the same) out of the update, "
        "and take the token mean over the rows that stay (DAPO's dynamic-sampling batch, no refill; "
        "posttrain/stages/grpo_trainer.py). Same policy gradient for less compute; the KL term (beta) "
        "then covers the kept rows only.",
    )
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
        "Generation engine of the eval and its budget sweep: hf (in-process generate) or vllm (a real vLLM "
        "server per target, started from .venv-vllm or POSTTRAIN_VLLM_PYTHON; same prompts, greedy, the "
        "in-process budget algorithm over HTTP, grace window included).",
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
