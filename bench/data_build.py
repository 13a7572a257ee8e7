"""Data build at scale: real-schema rows through the streaming build, against the in-memory build.

1. Writes ``--rows`` rows in the Nemotron-Post-Training-Dataset schema (``uuid, license, generator,
   version, category, reasoning, messages, metadata`` as a JSON string, reasoning inline as
   ``<think>...</think>`` in the assistant content, tool calls, both modes) from the five offline
   generators (math with ``SCALE_MATH`` ranges where present), to a JSONL file (timed apart).
2. Builds that file as a source (validate -> flag -> dedup -> decontaminate -> split -> template
   -> tokenise -> views -> write) with ``streaming=true`` at each ``--procs`` count, each build in a
   fresh process so its peak RSS (parent and largest worker) is its own.
3. Baseline, same run: the in-memory build of the first ``min(rows, --baseline-rows)`` rows.

    python bench/data_build.py --rows 100000           # the README's figure
    python bench/data_build.py --rows 1000000 --baseline-rows 100000
    python bench/data_build.py --quick                 # 5k rows

Writes bench/results/data_build.json (``rows_per_s_per_process``, ``processes``, ``peak_rss_mib``,
``kept_after_dedup`` for the best streaming run, plus every run) and data_build.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def nemotron_row(s: dict) -> dict:
    """A canonical sample in the public dataset's on-disk form (inline think, metadata as a string)."""
    msgs = []
    for m in s["messages"]:
        content = m["content"]
        if m["role"] == "assistant" and s["reasoning"] == "on":
            content = f"<think>\n{m['reasoning_content'] or ''}\n</think>\n{content}"
        row = {"role": m["role"], "content": content}
        if m.get("tool_calls"):
            row["tool_calls"] = m["tool_calls"]
        msgs.append(row)
    keys = ("uuid", "license", "generator", "version", "category", "reasoning")
    return {**{k: s[k] for k in keys}, "messages": msgs, "metadata": json.dumps(s["metadata"])}


def _gen_chunk(args: tuple) -> list[str]:
    from data_recipes.domains import get
    from data_recipes.transforms.reasoning import off_copy

    cfg, domain, a, b = args
    out = []
    for s in get(domain).generate(cfg, list(range(a, b))):
        if int(s["uuid"][:2], 16) < 26:  # ~10 % of rows as reasoning-OFF, as in the public splits
            s = off_copy(s)
        out.append(json.dumps(nemotron_row(s), ensure_ascii=False))
    return out


def write_rows(n: int, path: Path, procs: int) -> float:
    from data_recipes import config
    from data_recipes.config import RecipeConfig
    from data_recipes.mixture import allocate

    math = getattr(config, "SCALE_MATH", None)
    cfg = RecipeConfig(name="rows", total=n, **({"math_tasks": math} if math else {}))
    chunks = [
        (cfg, d, a, min(k, a + 2000)) for d, k in allocate(n, cfg.domains).items() for a in range(0, k, 2000)
    ]
    t0 = time.perf_counter()
    with path.open("w", encoding="utf-8") as fh, mp.get_context("fork").Pool(procs) as pool:
        for lines in pool.imap(_gen_chunk, chunks):
            fh.write("\n".join(lines) + "\n")
    return time.perf_counter() - t0


CHILD = """
import json, re, resource, sys, threading, time
# ru_maxrss also counts the file pages of memory-mapped Arrow views (page cache, reclaimable), which grow
# with the output; the parent's anonymous (heap) peak is sampled from /proc where there is one.
anon = [0]
def _sample():
    while True:
        try:
            s = open("/proc/self/status").read()
        except OSError:
            return
        anon[0] = max(anon[0], int(re.search(r"RssAnon:\\s+(\\d+)", s).group(1)))
        time.sleep(0.2)
threading.Thread(target=_sample, daemon=True).start()
from data_recipes.build import build_recipe
from data_recipes.config import RecipeConfig
from posttrain.models.tokenizer import build_tokenizer
path, out, streaming, procs, limit = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5])
tok = build_tokenizer()
src = {"path": path, "format": "nemotron", "take": "all", "limit": limit}
cfg = RecipeConfig(name="bench", total=0, domains={}, sources=[src], streaming=streaming, num_proc=procs)
cpu = lambda: time.process_time() + sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
t0, c0 = time.perf_counter(), cpu()
m = build_recipe(cfg, out, tokenizer=tok, force=True)
dt, dc = time.perf_counter() - t0, cpu() - c0
mib = lambda who: resource.getrusage(who).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "cpu_seconds": dc, "kept": m["counts"]["total"] - m["off_pairs"], "off_pairs": m["off_pairs"], "dropped": m["dropped"]["dedup"],
                  "rejected": m["rejected"]["count"], "rss_parent_mib": mib(resource.RUSAGE_SELF),
                  "rss_worker_mib": mib(resource.RUSAGE_CHILDREN), "anon_parent_mib": anon[0] / 1024 or None}))
"""


def build_once(rows: Path, out: Path, streaming: bool, procs: int, limit: int, cache: Path) -> dict:
    env = {
        **os.environ,
        "POSTTRAIN_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    args = [
        sys.executable,
        "-c",
        CHILD,
        str(rows),
        str(out),
        "1" if streaming else "0",
        str(procs),
        str(limit),
    ]
    res = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"build failed (streaming={streaming}, procs={procs}): {res.stderr[-2000:]}")
    got = json.loads(res.stdout.strip().splitlines()[-1])
    return {
        "mode": "streaming" if streaming else "in-memory",
        "processes": procs,
        "rows_in": limit,
        "seconds": round(got["seconds"], 2),
        "rows_per_s": round(limit / got["seconds"], 1),
        "rows_per_s_per_process": round(limit / got["seconds"] / procs, 1),
        "cpu_seconds": round(got["cpu_seconds"], 2),  # parent + workers: comparable on a shared machine
        "rows_per_cpu_s": round(limit / got["cpu_seconds"], 1),
        "kept_after_dedup": got["kept"],  # input rows kept (the build's own OFF copies not counted)
        "off_copies_added": got["off_pairs"],
        "dropped_dedup": got["dropped"],
        "rejected": got["rejected"],
        "peak_rss_mib": round(max(got["rss_parent_mib"], got["rss_worker_mib"]), 1),
        "peak_rss_parent_mib": round(got["rss_parent_mib"], 1),
        "peak_rss_worker_mib": round(got["rss_worker_mib"], 1),
        "peak_anon_parent_mib": round(got["anon_parent_mib"], 1) if got["anon_parent_mib"] else None,
    }


def run(n: int, procs: list[int], baseline_rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        tmp = Path(tmp)
        rows = tmp / "rows.jsonl"
        t_gen = write_rows(n, rows, max(procs))
        runs = [build_once(rows, tmp / "base", False, 1, min(n, baseline_rows), tmp / "c0")]
        for p in procs:
            runs.append(build_once(rows, tmp / f"s{p}", True, p, n, tmp / f"c{p}"))
        size = rows.stat().st_size
    stream = [r for r in runs if r["mode"] == "streaming"]
    best = max(stream, key=lambda r: r["rows_per_s_per_process"])
    one = next((r for r in stream if r["processes"] == 1), None)
    scaling = {
        r["processes"]: round(r["rows_per_s"] / one["rows_per_s"], 2) for r in stream if one is not None
    }
    base = runs[0]
    return {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "rows": n,
        "input_mib": round(size / 2**20, 1),
        "generate_rows_s": round(t_gen, 2),
        "rows_per_s_per_process": best["rows_per_s_per_process"],
        "processes": best["processes"],
        "peak_rss_mib": best["peak_rss_mib"],
        "peak_anon_parent_mib": best["peak_anon_parent_mib"],
        "kept_after_dedup": best["kept_after_dedup"],
        "kept_fraction": round(best["kept_after_dedup"] / n, 4),
        "speedup_vs_in_memory_1proc": round(one["rows_per_s"] / base["rows_per_s"], 2) if one else None,
        "scaling_vs_1_process": scaling,
        "runs": runs,
    }


def table(r: dict) -> str:
    head = "mode|processes|rows in|s|rows/s|rows/s/process|rows/CPU-s|kept|peak RSS MiB|heap MiB".split("|")
    keys = "mode processes rows_in seconds rows_per_s rows_per_s_per_process rows_per_cpu_s".split()
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in r["runs"]:
        vals = [str(x[k]) for k in keys] + [
            str(x[k]) for k in ("kept_after_dedup", "peak_rss_mib", "peak_anon_parent_mib")
        ]
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="real-schema rows to generate and build")
    ap.add_argument("--quick", action="store_true", help="5k rows")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    ap.add_argument("--baseline-rows", type=int, default=100_000, help="rows for the in-memory baseline")
    ap.add_argument("--out", type=Path, default=RESULTS / "data_build.json")
    args = ap.parse_args()
    n = 5_000 if args.quick else args.rows
    result = run(n, args.procs, args.baseline_rows)
    md = (
        f"# Data build, {n} real-schema rows\n\n{table(result)}\n\n"
        f"Rows written in {result['generate_rows_s']} s ({result['input_mib']} MiB JSONL, not in the build "
        f"times). kept after dedup: {result['kept_after_dedup']} ({result['kept_fraction']:.1%}). Streaming "
        f"at 1 process is {result['speedup_vs_in_memory_1proc']}x the in-memory build; scaling "
        f"{result['scaling_vs_1_process']}. {result['machine']}.\n\n"
        f"`python bench/data_build.py --rows {n}`\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
