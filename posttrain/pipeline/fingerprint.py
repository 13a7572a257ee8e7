"""Content fingerprints: equal inputs give equal hashes, any changed field changes the hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

import posttrain


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
    """The package version plus a hash of the given modules' source files."""
    h = hashlib.sha256(posttrain.__version__.encode())
    for mod in modules:
        src = getattr(mod, "__file__", None)
        if src:
            h.update(Path(src).read_bytes())
    return f"{posttrain.__version__}+{h.hexdigest()[:12]}"
