"""Verifiable rewards for GRPO: per-category verifiers, a dispatcher, a code sandbox and TRL adapters.

* ``score(category, metadata, completion, reasoning)``: correctness in [0, 1] of the answer part.
* ``format_reward(text, reasoning)``: 1.0 if the think/answer layout is well-formed.
* ``length_penalty(n_thinking_tokens, budget, slope=...)``: soft penalty in [-1, 0].
* ``correctness_reward``, ``correctness_in_format_reward``, ``format_reward_fn``, ``make_length_penalty(...)``: TRL ``GRPOTrainer`` reward funcs.
* ``run_python``: model code in an OS sandbox (bubblewrap); ``SandboxUnavailable`` where there is none.
"""

from __future__ import annotations

from posttrain.rewards.dispatch import VERIFIERS, score, score_answer
from posttrain.rewards.format import Parsed, format_reward, split_completion
from posttrain.rewards.grpo import (
    completion_text,
    correctness_in_format_reward,
    correctness_reward,
    format_reward_fn,
    make_length_penalty,
)
from posttrain.rewards.length import length_penalty
from posttrain.rewards.safety import is_refusal
from posttrain.rewards.sandbox import SandboxResult, SandboxUnavailable, run_python

__all__ = [
    "VERIFIERS",
    "Parsed",
    "SandboxResult",
    "SandboxUnavailable",
    "completion_text",
    "correctness_in_format_reward",
    "correctness_reward",
    "format_reward",
    "format_reward_fn",
    "is_refusal",
    "length_penalty",
    "make_length_penalty",
    "run_python",
    "score",
    "score_answer",
    "split_completion",
]
