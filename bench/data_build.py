"""Benchmark the data build: samples/s for generating + tokenising N samples with 1 and 2 processes,
the full build (dedup, decontamination, splits, views on disk), and a cached rebuild.

    python bench/data_build.py            # 100k samples
    python bench/data_build.py --quick    # 5k samples

Writes bench/results/data_build.json and prints a markdown table. Uses a private cache folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def run(n: int, procs: list[int], out_json: Path) -> dict:
    from data_recipes import parallel
    from data_recipes.build import build_recipe
    from data_recipes.config import RecipeConfig
    from data_recipes.mixture import allocate
    from posttrain.models.tokenizer import build_tokenizer

    tok = build_tokenizer()
    warm = RecipeConfig(name="warmup", total=50)
    for d in warm.domains:  # imports (reasoning-gym takes seconds) and caches, outside the timings
        parallel.measure(parallel.generate(warm, d, 10), tok, 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        os.environ["POSTTRAIN_CACHE"] = str(Path(tmp) / "cache")
        for p in procs:
            cfg = RecipeConfig(name=f"bench{n}", total=n, num_proc=p)
            t0 = time.perf_counter()  # core: generation + tokenisation only
            samples = []
            for key, k in allocate(n, {f"domain:{d}": w for d, w in cfg.domains.items()}).items():
                samples += parallel.generate(cfg, key.split(":", 1)[1], k)
            t_gen = time.perf_counter() - t0
            parallel.measure(samples, tok, p)
            t_core = time.perf_counter() - t0
            t0 = time.perf_counter()  # full build into a fresh folder
            m = build_recipe(cfg, Path(tmp) / f"out{p}", tokenizer=tok, force=True)
            t_build = time.perf_counter() - t0
            t0 = time.perf_counter()
            build_recipe(cfg, Path(tmp) / f"out{p}", tokenizer=tok)
            t_cached = time.perf_counter() - t0
            t0 = time.perf_counter()
            build_recipe(cfg, Path(tmp) / f"copy{p}", tokenizer=tok)
            t_copy = time.perf_counter() - t0
            rows.append(
                {
                    "samples": n,
                    "num_proc": p,
                    "generate_s": round(t_gen, 2),
                    "generate_tokenize_s": round(t_core, 2),
                    "generate_tokenize_samples_per_s": round(n / t_core, 1),
                    "full_build_s": round(t_build, 2),
                    "full_build_samples_per_s": round(m["counts"]["total"] / t_build, 1),
                    "output_samples": m["counts"]["total"],
                    "cached_rebuild_s": round(t_cached, 3),
                    "cache_copy_to_new_dir_s": round(t_copy, 3),
                }
            )
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "rows": rows,
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def table(result: dict) -> str:
    head = [
        "samples",
        "num_proc",
        "generate+tokenize s",
        "samples/s",
        "full build s",
        "samples/s",
        "cached rebuild s",
        "copy from cache s",
    ]
    keys = [
        "samples",
        "num_proc",
        "generate_tokenize_s",
        "generate_tokenize_samples_per_s",
        "full_build_s",
        "full_build_samples_per_s",
        "cached_rebuild_s",
        "cache_copy_to_new_dir_s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in result["rows"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5k samples instead of 100k")
    ap.add_argument("--samples", type=int, default=None, help="override the sample count")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "data_build.json")
    args = ap.parse_args()
    n = args.samples or (5_000 if args.quick else 100_000)
    result = run(n, args.procs, args.out)
    print(table(result))
    print(f"\n{result['machine']}; JSON: {args.out}")


if __name__ == "__main__":
    main()
