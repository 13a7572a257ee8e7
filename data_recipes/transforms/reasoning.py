"""Reasoning control: ``/think`` / ``/no_think`` flags and OFF copies.

Every sample's system turn carries exactly one flag matching its ``reasoning`` field (the chat
template strips it and opens the assistant turn with ``<think>\\n`` or ``<think></think>``).

``pair_off`` picks ``round(fraction * #ON samples)`` ON samples (seeded) and adds an OFF copy of
each: same prompt, ``/no_think`` flag, every ``reasoning_content`` emptied, same answer. Nano 2
pairs ~10 % of prompts this way; the share here is of the ON samples present at that point.
"""

from __future__ import annotations

import random

from data_recipes.domains.common import sample_uuid
from data_recipes.schema import with_flag


def apply_flag(sample: dict) -> dict:
    """The sample with its system flag set from ``sample["reasoning"]``."""
    return {**sample, "messages": with_flag(sample["messages"], sample["reasoning"])}


def off_copy(sample: dict) -> dict:
    """A reasoning-OFF copy: empty think blocks, ``/no_think`` flag, same prompt and answers."""
    messages = [{**m, "reasoning_content": None} for m in sample["messages"]]
    meta = {**sample["metadata"], "paired_with": sample["uuid"]}
    copy = {**sample, "uuid": sample_uuid(sample["uuid"], "off"), "reasoning": "off", "metadata": meta}
    copy["messages"] = with_flag(messages, "off")
    return copy


def pair_off(samples: list[dict], fraction: float, seed: int) -> list[dict]:
    """OFF copies of a seeded ``fraction`` of the ON samples (returned; the input is not changed)."""
    on = [s for s in samples if s["reasoning"] == "on"]
    k = round(fraction * len(on))
    chosen = random.Random(f"{seed}:off").sample(range(len(on)), k) if k else []
    return [off_copy(on[j]) for j in sorted(chosen)]
