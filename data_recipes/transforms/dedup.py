"""Deduplication, first occurrence wins.

1. Exact: identical ``(reasoning, messages)``.
2. Normalised: identical ``(reasoning, normalised prompt)``, where the prompt is the user turns'
   text (flags removed) lower-cased with punctuation and extra whitespace dropped. So one prompt
   keeps one response per reasoning mode; the ON/OFF pairs made later are not affected.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from data_recipes.schema import normalise_text, prompt_text


def exact_key(sample: dict) -> str:
    blob = json.dumps([sample["reasoning"], sample["messages"]], sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(blob.encode()).hexdigest()


def prompt_key(sample: dict) -> str:
    return normalise_text(prompt_text(sample))


def dedup(samples: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """``(kept, {"exact": n, "normalized": m, "by_category": {category: n + m}})``."""
    seen_exact: set[str] = set()
    seen_norm: set[tuple[str, str]] = set()
    kept, counts, by_cat = [], {"exact": 0, "normalized": 0}, Counter()
    for s in samples:
        e, n = exact_key(s), (s["reasoning"], prompt_key(s))
        kind = "exact" if e in seen_exact else "normalized" if n in seen_norm else None
        seen_exact.add(e)
        seen_norm.add(n)
        if kind is None:
            kept.append(s)
        else:
            counts[kind] += 1
            by_cat[s["category"]] += 1
    return kept, {**counts, "by_category": dict(sorted(by_cat.items()))}
