"""Stages: one thin module per kind, each exposing ``run(cfg, inputs) -> StageOutputs``."""

from __future__ import annotations

import importlib
from types import ModuleType

from posttrain.config.schema import STAGE_SCHEMAS

KINDS = tuple(STAGE_SCHEMAS)  # a kind exists when its schema is registered (one registry, not two)


def stage_module_name(kind: str) -> str:
    """The module implementing stage ``kind`` (named, not imported: fingerprints hash its source)."""
    if kind not in KINDS:
        raise ValueError(f"unknown stage kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return f"posttrain.stages.{kind}"


def stage_module(kind: str) -> ModuleType:
    """Import the module implementing stage ``kind``."""
    return importlib.import_module(stage_module_name(kind))
