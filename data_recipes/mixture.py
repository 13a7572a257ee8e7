"""Weighted, seeded mixing and prompt-disjoint splits.

* ``allocate``: ``total`` split over components by normalised weight with the largest-remainder
  method, so the counts sum to ``total`` and each is within 1 of ``total * weight``.
* ``take``: a seeded sample without replacement from a source's rows (all rows if it has fewer;
  the shortfall is reported in the manifest, never filled by repetition).
* ``assign_splits``: the distinct normalised prompts are shuffled (seeded) and cut into
  train/validation/test by the split fractions, so no prompt is in two splits; all samples of a
  prompt (e.g. an ON sample and its OFF copy) share a split.
"""

from __future__ import annotations

import math
import random

from data_recipes.transforms.dedup import prompt_key

SPLITS = ("train", "validation", "test")


def allocate(total: int, weights: dict[str, float]) -> dict[str, int]:
    names = sorted(weights)
    wsum = sum(weights[n] for n in names)
    if total == 0 or wsum <= 0:
        return dict.fromkeys(names, 0)
    exact = {n: total * weights[n] / wsum for n in names}
    counts = {n: math.floor(exact[n]) for n in names}
    by_remainder = sorted(names, key=lambda n: (-(exact[n] - counts[n]), n))
    for n in by_remainder[: total - sum(counts.values())]:
        counts[n] += 1
    return counts


def take(rows: list[dict], k: int, seed: int, key: str) -> list[dict]:
    if k >= len(rows):
        return list(rows)
    idx = sorted(random.Random(f"{seed}:take:{key}").sample(range(len(rows)), k))
    return [rows[i] for i in idx]


def assign_splits(samples: list[dict], fractions: dict[str, float], seed: int) -> dict[str, int]:
    """Set ``sample["_split"]`` for every sample; return the number of distinct prompts per split."""
    keys = sorted({prompt_key(s) for s in samples})
    random.Random(f"{seed}:split").shuffle(keys)
    n = len(keys)
    n_val = round(n * fractions["validation"])
    n_test = round(n * fractions["test"])
    where = {}
    for i, k in enumerate(keys):
        where[k] = "validation" if i < n_val else "test" if i < n_val + n_test else "train"
    for s in samples:
        s["_split"] = where[prompt_key(s)]
    return {"train": n - n_val - n_test, "validation": n_val, "test": n_test}


def shuffle(rows: list[dict], seed: int, key: str) -> list[dict]:
    rows = list(rows)
    random.Random(f"{seed}:shuffle:{key}").shuffle(rows)
    return rows
