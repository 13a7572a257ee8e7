"""Capacity of the offline generators: how many of N requested samples survive dedup.

For each domain, generate its ``allocate(total, cfg.domains)`` share, set the reasoning flag and
count distinct ``(reasoning, prompt_key)`` (what dedup keeps). Math uses ``SCALE_MATH`` unless
``--tiny-math`` (the reported recipes' ``_TINY_MATH``).

    python bench/data_capacity.py                 # total=100000
    python bench/data_capacity.py --total 20000 --domains code safety
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an installed copy


def main() -> None:
    from data_recipes import config as config_mod
    from data_recipes.config import RecipeConfig
    from data_recipes.domains import get
    from data_recipes.mixture import allocate
    from data_recipes.transforms.dedup import prompt_key
    from data_recipes.transforms.reasoning import apply_flag

    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=100_000)
    ap.add_argument("--domains", nargs="*", default=None)
    ap.add_argument("--tiny-math", action="store_true", help="math with _TINY_MATH instead of SCALE_MATH")
    args = ap.parse_args()
    math_tasks = getattr(config_mod, "SCALE_MATH", None)
    if args.tiny_math or math_tasks is None:
        math_tasks = config_mod._TINY_MATH
    cfg = RecipeConfig(name="cap", total=args.total, math_tasks=math_tasks)
    counts = allocate(args.total, cfg.domains)
    kept_total = 0
    print("| domain | requested | distinct | share | seconds |\n|---|---|---|---|---|")
    for d in sorted(counts):
        if args.domains and d not in args.domains:
            continue
        t0 = time.perf_counter()
        rows = get(d).generate(cfg, list(range(counts[d])))
        distinct = len({(s["reasoning"], prompt_key(s)) for s in map(apply_flag, rows)})
        kept_total += distinct
        dt = time.perf_counter() - t0
        print(f"| {d} | {counts[d]} | {distinct} | {distinct / counts[d]:.1%} | {dt:.0f} |", flush=True)
    print(f"kept {kept_total} of {sum(counts[d] for d in counts if not args.domains or d in args.domains)}")


if __name__ == "__main__":
    main()
