"""The held-out prompts every evaluation draws (the eval stage, ``posttrain eval budget``, the ablation,
``bench/``): rows of a built data dir's ``rl`` view, capped per category, in data order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain import PosttrainError


def cap_rows(
    rows: list[dict[str, Any]],
    per_category: int | None = None,
    caps: dict[str, int] | None = None,
    max_prompts: int = 0,
) -> list[dict[str, Any]]:
    """The first ``caps[category]`` (else ``per_category``; ``None``: all) rows of each category, in data
    order; with ``max_prompts > 0`` at most that many in all, taking the categories round-robin."""
    caps = dict(caps or {})
    by_cat: dict[str, list[dict[str, Any]]] = {}
    out = []
    for r in rows:
        picked = by_cat.setdefault(r["category"], [])
        cap = caps.get(r["category"], per_category)
        if cap is None or len(picked) < cap:
            picked.append(r)
            out.append(r)
    if max_prompts <= 0 or len(out) <= max_prompts:
        return out
    queues, capped = [list(v) for v in by_cat.values()], []
    while len(capped) < max_prompts:
        for q in queues:
            if q and len(capped) < max_prompts:
                capped.append(q.pop(0))
    return capped


def load_rows(
    data: str | Path,
    split: str = "test",
    per_category: int | None = None,
    caps: dict[str, int] | None = None,
    max_prompts: int = 0,
    *,
    where: str = "split",
) -> list[dict[str, Any]]:
    """``cap_rows`` over ``<data>/rl`` split ``split`` (``a+b`` joins splits, in that order). Errors name
    ``where`` (the config key the split came from) and the path."""
    from datasets import load_from_disk

    path = Path(data) / "rl"
    if not path.exists():
        raise PosttrainError(
            f"data: {path} does not exist; build it with `posttrain data build ... out={data}`"
        )
    dd = load_from_disk(str(path))
    rows: list[dict[str, Any]] = []
    for part in (p.strip() for p in split.split("+")):
        if part not in dd:
            raise PosttrainError(f"{where}: no split {part!r} in {path} (has {sorted(dd)})")
        rows += dd[part].to_list()
    rows = cap_rows(rows, per_category, caps, max_prompts)
    if not rows:
        raise PosttrainError(f"{where}: {path} split {split!r} is empty")
    return rows
