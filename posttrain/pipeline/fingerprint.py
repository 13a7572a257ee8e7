"""Content fingerprints: equal inputs give equal hashes, any changed field changes the hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

import posttrain
from data_recipes import codehash

PACKAGES = ("posttrain", "data_recipes")
STAGE_LIBS = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "math-verify", "lm-eval")


def canonical(obj: Any) -> Any:
    """A JSON-serialisable, key-sorted view of configs, dataclasses, paths and containers."""
    if isinstance(obj, (DictConfig, ListConfig)):
        obj = OmegaConf.to_container(obj, resolve=True)
    if hasattr(obj, "__dataclass_fields__"):
        obj = {k: getattr(obj, k) for k in obj.__dataclass_fields__}
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def fingerprint(*parts: Any) -> str:
    """sha256 over the canonical JSON of ``parts`` (order matters)."""
    payload = json.dumps([canonical(p) for p in parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def code_version(*modules: Any) -> str:
    """The package version plus ``data_recipes.codehash.code_version`` of the given modules: their
    transitive imports inside posttrain and data_recipes, and the training libraries' versions."""
    names = tuple(m if isinstance(m, str) else m.__name__ for m in modules)
    return f"{posttrain.__version__}+{codehash.code_version(names, PACKAGES, STAGE_LIBS)}"
