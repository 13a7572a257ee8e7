"""Where the demo's time goes: ``make demo``'s pipeline from nothing, per stage, with generation rates.

    python bench/demo_time.py [--pipeline nano2_tiny] [--work DIR] [overrides ...]

Runs ``posttrain run pipeline=<pipeline> run_dir=<work>/run`` in a fresh process with a fresh data
cache (what a new clone does after ``make install``), and reads each stage's manifest:

* wall time per stage (``started_at`` to ``finished_at``) and its share of the whole run; the rest is
  CLI start-up, the data build and checkpoint hand-offs (``other``);
* decode rates measured inside the stages (``posttrain.inference.generate.metered``): preference
  mining, the eval per target, and GRPO's rollouts with the split of its training time into
  generating, scoring (rewards, log-probs) and the update (``TimedGRPOTrainer``);
* how long after launch the first stage starts (CLI start-up, config, the data build's cache check);
* for each performance change of issue 15, the share of the run in the stage it speeds up.

Writes ``bench/results/demo_time.{json,md}``. The machine's load is recorded (``os.getloadavg`` before
the run), because a loaded 2-core machine stretches every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# issue 15's changes and the stage each one speeds up
CHANGES = {
    "padding-free bfd packing (bench/train_throughput.py)": ["sft", "dpo"],
    "one-pass budgeted generation (bench/budget.py)": ["eval"],
    "a faster generation engine (vLLM, issue 14)": ["preference", "grpo", "eval"],
    "the data build (bench/data_build.py)": ["other"],
}


def stage_rows(run_dir: Path, total: float) -> tuple[list[dict], dict[str, dict]]:
    rows, metrics = [], {}
    for p in sorted(run_dir.glob("[0-9][0-9]_*/manifest.json")):
        m = json.loads(p.read_text())
        sec = float(m["finished_at"]) - float(m["started_at"])
        rows.append({"stage": m["stage"], "seconds": round(sec, 1), "share": round(sec / total, 3)})
        metrics[m["stage"]] = m["metrics"]
    other = total - sum(r["seconds"] for r in rows)
    rows.append({"stage": "other", "seconds": round(other, 1), "share": round(other / total, 3)})
    return rows, metrics


def generation(metrics: dict[str, dict]) -> dict:
    out: dict = {}
    if "preference" in metrics:
        out["preference_tokens_per_s"] = metrics["preference"].get("generate_tokens_per_s")
    ev = metrics.get("eval", {})
    out["eval_tokens_per_s"] = {
        (k.split(".")[0] if "." in k else "model"): v
        for k, v in ev.items()
        if k.endswith("generate_tokens_per_s")
    }
    g = metrics.get("grpo", {})
    keys = (
        "rollout_tokens_per_s",
        "share_generate",
        "share_score",
        "share_update",
        "frac_reward_zero_std_last",
    )
    out["grpo"] = {k: g.get(k) for k in keys}
    return out


def run(pipeline: str, work: Path, overrides: list[str]) -> dict:
    run_dir = work / "run"
    env = {
        **os.environ,
        "POSTTRAIN_CACHE": str(work / "cache"),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
    }
    load = os.getloadavg()
    launched, t0 = time.time(), time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "posttrain.cli",
        "run",
        f"pipeline={pipeline}",
        f"run_dir={run_dir}",
        *overrides,
    ]
    subprocess.run(cmd, env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    total = time.perf_counter() - t0
    rows, metrics = stage_rows(run_dir, total)
    first = min(
        float(json.loads(p.read_text())["started_at"]) for p in run_dir.glob("[0-9][0-9]_*/manifest.json")
    )
    share = {r["stage"]: r["share"] for r in rows}
    return {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "loadavg_before": [round(x, 2) for x in load],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "command": " ".join(["posttrain", *cmd[3:5], *overrides]),
        "total_s": round(total, 1),
        "within_10_min": total <= 600,
        "first_stage_started_after_s": round(first - launched, 2),
        "stages": rows,
        "generation": generation(metrics),
        "share_of_run_by_change": {
            c: round(sum(share.get(s, 0) for s in st), 3) for c, st in CHANGES.items()
        },
    }


def markdown(r: dict) -> str:
    lines = [f"# `{r['command']}` from nothing: {r['total_s']:.0f} s", ""]
    lines += [f"First stage started {r['first_stage_started_after_s']} s after launch.", ""]
    lines += [
        f"{r['machine']}; load before {r['loadavg_before']}; OMP_NUM_THREADS={r['omp_num_threads']}",
        "",
    ]
    lines += ["| stage | seconds | share |", "|---|---|---|"]
    lines += [f"| {s['stage']} | {s['seconds']} | {s['share']:.1%} |" for s in r["stages"]]
    g = r["generation"]
    lines += ["", "| generation | tokens/s |", "|---|---|"]
    lines += [f"| preference mining (sampled) | {g.get('preference_tokens_per_s')} |"]
    lines += [f"| eval, {t} (greedy) | {v} |" for t, v in g["eval_tokens_per_s"].items()]
    lines += [f"| GRPO rollouts (sampled) | {g['grpo']['rollout_tokens_per_s']} |"]
    gr = g["grpo"]
    lines += [
        "",
        f"GRPO training time: generating {gr['share_generate']}, scoring {gr['share_score']}, "
        f"updating {gr['share_update']}.",
        "",
        "| change | share of the run in the stages it speeds up |",
        "|---|---|",
    ]
    lines += [f"| {c} | {v:.1%} |" for c, v in r["share_of_run_by_change"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", default="nano2_tiny")
    ap.add_argument("--work", type=Path, default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "demo_time.json")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for the run")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        result = run(a.pipeline, a.work or Path(tmp), a.overrides)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    a.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
