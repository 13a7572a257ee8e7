"""Reasoning control: ``/think`` / ``/no_think`` flags and OFF copies.

Every sample's system turn carries exactly one flag matching its ``reasoning`` field (the chat
template strips it and opens the assistant turn with ``<think>\\n`` or ``<think></think>``).

``pair_off`` picks ``round(fraction * #ON samples)`` ON samples (seeded) and adds an OFF copy of
each: same prompt, ``/no_think`` flag, every ``reasoning_content`` emptied, same answer. Nano 2
pairs ~10 % of prompts this way; the share here is of the ON samples present at that point.

``working=True`` (the recipe's ``off_working`` domains) keeps each emptied trace as visible working at
the head of its answer (``<trace>\n<answer>``) instead of dropping it. Nano 2's reasoning-off answers
are the final response of a reasoning model, which for math still shows a short solution; our
generated math answers are a bare ``\boxed{N}`` line, which a 135M model cannot produce without
working (right ~4 % of the time, runs/r8).
"""

from __future__ import annotations

import random

from data_recipes.domains.common import sample_uuid
from data_recipes.schema import with_flag


def apply_flag(sample: dict) -> dict:
    """The sample with its system flag set from ``sample["reasoning"]``."""
    return {**sample, "messages": with_flag(sample["messages"], sample["reasoning"])}


def _visible(m: dict) -> dict:
    """An assistant turn with its trace moved to the head of its text answer (tool calls untouched)."""
    trace = m.get("reasoning_content")
    if m["role"] != "assistant" or not trace or m.get("tool_calls") or not m.get("content"):
        return {**m, "reasoning_content": None}
    return {**m, "content": f"{trace.rstrip()}\n{m['content']}", "reasoning_content": None}


def off_copy(sample: dict, working: bool = False) -> dict:
    """A reasoning-OFF copy: empty think blocks, ``/no_think`` flag, same prompt; same answers, or with
    ``working`` each trace shown at the head of its answer."""
    messages = [_visible(m) if working else {**m, "reasoning_content": None} for m in sample["messages"]]
    meta = {**sample["metadata"], "paired_with": sample["uuid"]}
    copy = {**sample, "uuid": sample_uuid(sample["uuid"], "off"), "reasoning": "off", "metadata": meta}
    copy["messages"] = with_flag(messages, "off")
    return copy


def pair_off(
    samples: list[dict], fraction: float, seed: int, working: frozenset[str] = frozenset()
) -> list[dict]:
    """OFF copies of a seeded ``fraction`` of the ON samples (returned; the input is not changed);
    copies of samples whose category is in ``working`` keep their traces as visible working."""
    on = [s for s in samples if s["reasoning"] == "on"]
    k = round(fraction * len(on))
    chosen = random.Random(f"{seed}:off").sample(range(len(on)), k) if k else []
    return [off_copy(on[j], on[j]["category"] in working) for j in sorted(chosen)]
