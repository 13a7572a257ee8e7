"""Where the CLI's start-up time goes (issue 15): light commands, the data cache check, and a pipeline's
first stages, next to the floor (importing the libraries the stages need) measured in the same run.

    python bench/startup.py [--repeats 3] [--pipeline nano2_smoke]

Each command runs ``--repeats`` times in a fresh process (median reported):

* ``posttrain --help``, ``posttrain status <run>``, ``posttrain data build --help``;
* ``posttrain data build out=<dir>`` when the build is cached (nothing to do), with a cProfile split
  of one such run into its parts (config, the data package's imports, the tokenizer, the fingerprint);
* ``posttrain run pipeline=<p> run_dir=<fresh>`` with the data cache warm: seconds from launch to each
  stage's ``started_at``, and the whole run;
* ``posttrain run`` again on the finished run dir (every stage done: verify and print the status);
* the floor: ``python -c "import torch, transformers, trl"`` and the NemotronH modeling import, which a
  training stage cannot avoid.

Writes ``bench/results/startup.{json,md}`` with the machine's load before the run.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "posttrain.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=ENV, cwd=ROOT)
    return time.perf_counter() - t0


def median(cmd: list[str], n: int) -> float:
    return round(statistics.median(timed(cmd) for _ in range(n)), 2)


def pipeline_starts(pipeline: str, run_dir: Path) -> dict:
    t0 = time.time()
    subprocess.run(
        [*CLI, "run", f"pipeline={pipeline}", f"run_dir={run_dir}"], check=True, capture_output=True, env=ENV
    )
    total = time.time() - t0
    starts = {}
    for p in sorted(run_dir.glob("[0-9][0-9]_*/manifest.json")):
        m = json.loads(p.read_text())
        starts[m["stage"]] = round(float(m["started_at"]) - t0, 2)
    return {"stage_start_s": starts, "total_s": round(total, 2)}


def data_build_split(out: Path) -> dict:
    """One cached ``data build`` in this process under cProfile: cumulative seconds of its parts."""
    from posttrain.cli import main

    prof = cProfile.Profile()
    prof.runcall(main, ["data", "build", f"out={out}"])
    stats = pstats.Stats(prof).stats
    parts = {
        "config (hydra compose)": ("compose.py", "compose"),
        "data_recipes.build import (datasets, pyarrow)": ("data_recipes/build.py", "<module>"),
        "tokenizer (transformers' tokenizers)": ("cli.py", "_data_tokenizer"),
        "recipe fingerprint (source hashes)": ("fingerprint.py", "recipe_fingerprint"),
        "whole command": ("cli.py", "cmd_data"),
    }
    out_s = {}
    for label, (file, fn) in parts.items():
        hits = [v[3] for k, v in stats.items() if k[0].endswith(file) and k[2] == fn]
        out_s[label] = round(max(hits), 2) if hits else None
    return out_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pipeline", default="nano2_smoke")
    ap.add_argument("--out", default=str(ROOT / "bench/results/startup"))
    args = ap.parse_args()
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="startup-"))
    n = args.repeats
    res: dict = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs", "load_before": load, "repeats": n}
    res["warm_up"] = pipeline_starts(args.pipeline, work / "warm")  # fills the data and model caches
    runs = [pipeline_starts(args.pipeline, work / f"run{i}") for i in range(n)]
    stages = list(runs[0]["stage_start_s"])
    res["run_fresh_dir"] = {
        "stage_start_s": {
            s: round(statistics.median(r["stage_start_s"][s] for r in runs), 2) for s in stages
        },
        "total_s": round(statistics.median(r["total_s"] for r in runs), 2),
    }
    finished = [*CLI, "run", f"pipeline={args.pipeline}", f"run_dir={work / 'run0'}"]
    res["run_all_done_s"] = median(finished, n)
    res["help_s"] = median([*CLI, "--help"], n)
    res["status_s"] = median([*CLI, "status", str(work / "run0")], n)
    res["data_build_help_s"] = median([*CLI, "data", "build", "--help"], n)
    data_out = work / "data"
    timed([*CLI, "data", "build", f"out={data_out}"])
    res["data_build_cached_s"] = median([*CLI, "data", "build", f"out={data_out}"], n)
    res["data_build_cached_split_s"] = data_build_split(data_out)
    res["floor_s"] = {
        "python -c pass": median([sys.executable, "-c", "pass"], n),
        "import torch, transformers, trl": median(
            [sys.executable, "-c", "import torch, transformers, trl"], n
        ),
        "+ NemotronH modeling": median(
            [sys.executable, "-c", "import trl; from transformers import NemotronHForCausalLM"], n
        ),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    out.with_suffix(".md").write_text(to_markdown(res, args.pipeline))
    print(to_markdown(res, args.pipeline))


def to_markdown(r: dict, pipeline: str) -> str:
    f = r["run_fresh_dir"]
    lines = [
        f"# CLI start-up ({r['machine']}, load before {[round(x, 2) for x in r['load_before']]}, median of {r['repeats']})",
        "",
        "| command | seconds |",
        "|---|---|",
        f"| `posttrain --help` | {r['help_s']} |",
        f"| `posttrain status <run>` | {r['status_s']} |",
        f"| `posttrain data build --help` | {r['data_build_help_s']} |",
        f"| `posttrain data build out=<dir>`, cached | {r['data_build_cached_s']} |",
        f"| `posttrain run pipeline={pipeline}` on a finished run dir | {r['run_all_done_s']} |",
        f"| `posttrain run pipeline={pipeline}`, fresh run dir, whole run | {f['total_s']} |",
        "",
        "| stage of the fresh run | starts after (s) |",
        "|---|---|",
        *[f"| {s} | {t} |" for s, t in f["stage_start_s"].items()],
        "",
        "| cached `data build`, one run under cProfile | seconds |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in r["data_build_cached_split_s"].items()],
        "",
        "| floor (a fresh interpreter) | seconds |",
        "|---|---|",
        *[f"| `{k}` | {v} |" for k, v in r["floor_s"].items()],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
