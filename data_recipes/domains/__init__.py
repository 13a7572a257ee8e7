"""Domain builders: offline, seeded generators of verifiable samples (one module per domain).

Each module has ``generate(cfg, indices) -> list[sample]`` (sample ``i`` depends only on the seed and
``i``, so any sharding over processes gives the same rows) and ``corrupt(sample, rng) -> message``
(a wrong version of the expected assistant turn that the domain's verifier rejects).
"""

from __future__ import annotations

import importlib
from types import ModuleType

DOMAINS = {
    "math": "data_recipes.domains.math",
    "code": "data_recipes.domains.code",
    "tool_calling": "data_recipes.domains.tools",
    "safety": "data_recipes.domains.safety",
    "chat": "data_recipes.domains.chat",
}


def get(name: str) -> ModuleType:
    """The builder module of domain ``name`` (imported lazily: math pulls in reasoning-gym)."""
    return importlib.import_module(DOMAINS[name])
