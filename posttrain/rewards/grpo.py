"""TRL ``GRPOTrainer`` reward-function adapters.

TRL 1.16 calls each reward function as ``fn(prompts=..., completions=..., completion_ids=..., **columns)``
where ``columns`` holds every dataset column except ``prompt``/``completion``/``completion_ids`` as a list
aligned with ``completions`` (here ``category``, ``reasoning``, ``metadata``), plus ``trainer_state``,
``log_extra`` and ``log_metric`` (and ``environments`` when used). Conversational completions are message
lists such as ``[{"role": "assistant", "content": text}]``; plain ones are strings. Each function returns one
float per completion and has a ``__name__`` (TRL uses it as the metric name).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from posttrain.reasoning import TEMPLATE_CLOSE
from posttrain.rewards import code
from posttrain.rewards._util import load_metadata
from posttrain.rewards.dispatch import score_answer
from posttrain.rewards.format import format_reward, reasoning_on, split_completion
from posttrain.rewards.length import length_penalty
from posttrain.rewards.tools import TOOLCALL_CLOSE, TOOLCALL_OPEN

CODE_WORKERS = max(1, min(8, os.cpu_count() or 1))


def _content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))  # multimodal parts


def completion_text(completion: str | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """Text of a completion: a string as-is, or the assistant message(s) of a conversational completion.

    Messages parsed by a tokenizer response schema are turned back into the raw layout: a
    ``reasoning_content``/``thinking`` field is re-joined with ``</think>`` and ``tool_calls`` become a
    ``<TOOLCALL>`` block.
    """
    if isinstance(completion, str):
        return completion
    messages = [completion] if isinstance(completion, Mapping) else list(completion)
    parts = []
    for msg in messages:
        if msg.get("role", "assistant") != "assistant":
            continue
        text = _content(msg.get("content"))
        thinking = msg.get("reasoning_content") or msg.get("thinking")
        if thinking:
            text = f"{thinking}{TEMPLATE_CLOSE}{text}"
        if msg.get("tool_calls"):
            calls = [c.get("function", c) for c in msg["tool_calls"]]
            text += f"{TOOLCALL_OPEN}{json.dumps(calls)}{TOOLCALL_CLOSE}"
        parts.append(text)
    return "\n".join(parts)


def correctness_reward(
    prompts: list[Any] | None = None,
    completions: list[Any] | None = None,
    completion_ids: list[list[int]] | None = None,
    *,
    category: list[str],
    metadata: list[Any],
    reasoning: list[str],
    code_workers: int = CODE_WORKERS,
    code_timeout_s: float = 5.0,
    **_: Any,
) -> list[float]:
    """Per-completion verifier score in [0, 1] of the answer part; code samples run concurrently.

    Code sandboxes (subprocesses) run in a thread pool; the other verifiers run on the calling thread, so
    math_verify can keep its signal-based timeouts when that is the main thread.
    """
    if completions is None:
        raise ValueError("completions are required")
    answers = [split_completion(completion_text(c), r).answer for c, r in zip(completions, reasoning)]
    rewards: list[float] = [0.0] * len(answers)
    code_idx = [i for i, cat in enumerate(category) if cat == "code"]
    with ThreadPoolExecutor(max_workers=max(1, min(code_workers, len(code_idx) or 1))) as pool:
        futures = {i: pool.submit(_score_code, metadata[i], answers[i], code_timeout_s) for i in code_idx}
        for i, cat in enumerate(category):
            if cat != "code":
                rewards[i] = score_answer(cat, metadata[i], answers[i])
        for i, fut in futures.items():
            rewards[i] = fut.result()
    return rewards


def _score_code(metadata: Any, answer: str, timeout_s: float) -> float:
    if not answer.strip():
        return 0.0
    return code.score(answer, load_metadata(metadata), timeout_s=timeout_s)


def format_reward_fn(
    prompts: list[Any] | None = None,
    completions: list[Any] | None = None,
    completion_ids: list[list[int]] | None = None,
    *,
    reasoning: list[str],
    **_: Any,
) -> list[float]:
    """Per-completion 1.0 if the think/answer layout matches its reasoning mode, else 0.0."""
    if completions is None:
        raise ValueError("completions are required")
    return [format_reward(completion_text(c), r) for c, r in zip(completions, reasoning)]


def correctness_in_format_reward(
    prompts: list[Any] | None = None,
    completions: list[Any] | None = None,
    completion_ids: list[list[int]] | None = None,
    **columns: Any,
) -> list[float]:
    """``correctness_reward`` counted only when the completion is well-formed for its mode, so a
    ``/no_think`` answer that reasons anyway (steps, then ``</think>``, then the answer) earns nothing.

    Why: with an additive format reward a policy trades format for correctness (measured on SmolLM2:
    with unscaled advantages GRPO raised ``/no_think`` math accuracy 0.18 -> 0.37 by thinking inside
    ``/no_think``, its format 0.81 -> 0.47). Gating removes that trade; the Nano 2 report does not say
    how it keeps the modes apart in RL.
    """
    scores = correctness_reward(prompts, completions, completion_ids, **columns)
    ok = format_reward_fn(prompts, completions, completion_ids, **columns)
    return [s * f for s, f in zip(scores, ok)]


class LengthPenaltyReward:
    """TRL reward: ``length_penalty`` of the thinking-token count for reasoning-ON samples, 0 for OFF."""

    __name__ = "length_penalty"

    def __init__(self, budget: int, slope: float, tokenizer: Any) -> None:
        length_penalty(0, budget, slope=slope)  # validates budget and slope
        self.budget, self.slope, self.tokenizer = budget, slope, tokenizer

    def __call__(
        self,
        prompts: list[Any] | None = None,
        completions: list[Any] | None = None,
        completion_ids: list[list[int]] | None = None,
        *,
        reasoning: list[str],
        **_: Any,
    ) -> list[float]:
        if completions is None:
            raise ValueError("completions are required")
        on = [reasoning_on(r) for r in reasoning]
        thoughts = [split_completion(completion_text(c), r).reasoning for c, r in zip(completions, on)]
        todo = [i for i, flag in enumerate(on) if flag and thoughts[i]]
        counts = [0] * len(thoughts)
        if todo:
            ids = self.tokenizer([thoughts[i] for i in todo], add_special_tokens=False)["input_ids"]
            for i, row in zip(todo, ids):
                counts[i] = len(row)
        return [
            length_penalty(n, self.budget, slope=self.slope) if flag else 0.0 for n, flag in zip(counts, on)
        ]


def make_length_penalty(budget: int, slope: float, tokenizer: Any) -> LengthPenaltyReward:
    """TRL reward function penalising thinking beyond ``budget`` tokens (counted with ``tokenizer``)."""
    return LengthPenaltyReward(budget, slope, tokenizer)
