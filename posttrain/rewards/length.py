"""Soft penalty for thinking longer than a token budget."""

from __future__ import annotations


def length_penalty(num_thinking_tokens: int, budget: int, *, slope: float) -> float:
    """``-min(1, slope * (n - budget) / budget)`` when ``n > budget``, else 0.0; always in [-1, 0].

    E.g. with ``slope=1`` thinking 50% over budget costs -0.5 and twice the budget or more costs -1.
    """
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    if slope < 0:
        raise ValueError(f"slope must be non-negative, got {slope}")
    over = max(0, num_thinking_tokens - budget) / budget
    return -min(1.0, slope * over) if over > 0 and slope > 0 else 0.0
