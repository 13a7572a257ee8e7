"""Helpers shared by the domain builders: deterministic RNGs, uuids and sample assembly."""

from __future__ import annotations

import hashlib
import random
import uuid as uuidlib
from functools import lru_cache

GENERATOR_VERSION = "1"
LICENSE = "apache-2.0"
REFUSAL = "I can't help with that."


def rng_for(seed: int, domain: str, index: int) -> random.Random:
    """A ``Random`` that depends only on (seed, domain, index)."""
    digest = hashlib.sha256(f"{seed}:{domain}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def sample_uuid(*parts: object) -> str:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return str(uuidlib.UUID(bytes=digest[:16]))


@lru_cache(maxsize=64)
def _permutation(seed: int, key: str, size: int) -> tuple[int, ...]:
    order = list(range(size))
    random.Random(f"{seed}:{key}").shuffle(order)
    return tuple(order)


def pick(seed: int, key: str, size: int, index: int) -> int:
    """Index ``index`` of a seeded permutation of ``range(size)``: distinct for the first ``size`` indices."""
    return _permutation(seed, key, size)[index % size]


def unrank(code: int, sizes: list[int]) -> list[int]:
    """Mixed-radix digits of ``code`` (one choice per slot)."""
    out = []
    for size in sizes:
        code, digit = divmod(code, size)
        out.append(digit)
    return out


def msg(role: str, content: str, reasoning: str | None = None, tool_calls: list | None = None) -> dict:
    return {
        "role": role,
        "content": content,
        "reasoning_content": reasoning or None,
        "tool_calls": tool_calls,
    }


def make_sample(domain: str, seed: int, index: int, messages: list[dict], metadata: dict) -> dict:
    """A canonical reasoning-ON sample (system flag ``/think``) from a builder."""
    return {
        "uuid": sample_uuid(seed, domain, index),
        "license": LICENSE,
        "generator": f"posttrain/data_recipes.{domain}",
        "version": GENERATOR_VERSION,
        "category": domain,
        "reasoning": "on",
        "messages": [msg("system", "/think"), *messages],
        "metadata": metadata,
        "_where": f"generated:{domain}:{index}",
    }
