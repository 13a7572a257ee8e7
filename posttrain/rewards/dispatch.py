"""Category dispatch: split a completion at ``</think>`` and score only its answer with the category's verifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from posttrain.rewards import code, instructions, math, safety, tools
from posttrain.rewards._util import load_metadata
from posttrain.rewards.format import split_completion

VERIFIERS = {
    "math": math.score,
    "code": code.score,
    "tool_calling": tools.score,
    "safety": safety.score,
    "chat": instructions.score,
}


def score_answer(category: str, metadata: Mapping[str, Any] | str, answer: str) -> float:
    """Apply the category's verifier to an already-extracted answer; 0.0 for an empty answer."""
    if category not in VERIFIERS:
        raise ValueError(f"unknown reward category {category!r}; expected one of {sorted(VERIFIERS)}")
    meta = load_metadata(metadata)
    if not answer.strip():
        return 0.0
    return float(VERIFIERS[category](answer, meta))


def score(category: str, metadata: Mapping[str, Any] | str, completion: str, reasoning: str | bool) -> float:
    """Correctness reward in [0, 1] of one completion: the verifier applied to its answer part.

    The reasoning part is never rewarded; an empty answer (e.g. thinking never closed) scores 0.
    """
    return score_answer(category, metadata, split_completion(completion, reasoning).answer)
