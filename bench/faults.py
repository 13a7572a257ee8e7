"""Crash-recovery benchmark: SIGKILL ``posttrain run pipeline=nano2_smoke`` at random points, rerun
the same command, and compare the result with an unbroken run.

    nice -n 19 python bench/faults.py [--kills N] [--seed 0] [--work /tmp/posttrain-faults]

1. Two unbroken reference runs, traced (``posttrain.pipeline.faultinject``): one with an empty data
   cache (the data is built) and one with a warm cache (copied from it). Their event lists are every
   point there is to kill; the two must be bit-identical (else the comparison means nothing).
2. Kill points, drawn at random (``--seed``) from groups: the data build, the cache restore, init,
   and for every stage: mid-training steps, trainer-checkpoint writes (weights or optimizer cut in
   half), right after the last trainer checkpoint, the final save, generation (mining, rollouts,
   eval), dataset saves and manifest writes (cut in half, or just after the rename); plus kills at
   random wall-clock times. Each kill is a SIGKILL of the whole process group.
3. Each trial: a fresh run dir, the killed run, then the same command again (``survived``: it exits
   0 and every stage is done), then once more (every stage must be skipped). The recovered run is
   compared with the reference by ``posttrain.pipeline.rundiff``: ``bit_exact`` when all weights,
   output files, per-step logs and metrics match, except differences ``rundiff`` explains (per-call
   train metrics of a resumed stage); ``identical`` when nothing differs at all.

Writes bench/results/faults.json and bench/results/faults.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posttrain.pipeline.faultinject import launch  # noqa: E402
from posttrain.pipeline.rundiff import compare_runs  # noqa: E402

ARGS = ["pipeline=nano2_smoke"]
WRITERS = ("safetensors", "torch_save")


def traced(run_dir: Path, cache: Path, trace: Path, env: dict) -> tuple[list[dict], float]:
    res = launch(
        [*ARGS, f"run_dir={run_dir}"],
        trace=trace,
        env={**env, "POSTTRAIN_CACHE": str(cache)},
        log=run_dir.with_suffix(".log"),
    )
    if res["rc"] != 0:
        raise SystemExit(f"reference run {run_dir} failed (exit {res['rc']}); see {run_dir}.log")
    return [json.loads(line) for line in trace.read_text().splitlines()], res["wall_s"]


def groups(cold: list[dict], warm: list[dict]) -> dict[str, list[tuple[str, int, list[str], str]]]:
    """Kill-point groups: label -> [(event, n, allowed whens, cache mode)]."""
    g: dict[str, list] = {}

    def add(label, e, whens, cache="warm"):
        g.setdefault(label, []).append((e["event"], e["n"], whens, cache))

    for e in cold:
        if e["event"] in ("data_write", "data_publish") or (
            e["dir"] == "data" and e["event"] == "save_to_disk"
        ):
            add("data build", e, ["before", "after"], "cold")
        elif e["dir"] == "data" and e["event"] == "write_json":
            add("data build", e, ["mid", "after"], "cold")
    for e in warm:
        if e["event"] == "data_publish":
            add("data restore from cache", e, ["before", "after"])
    stages = sorted({e["dir"] for e in warm if e["dir"][:2].isdigit()})
    for s in stages:
        ev = [e for e in warm if e["dir"] == s]
        saves = [e for e in ev if e["event"] == "trainer_save"]
        finals = [e for e in ev if e["event"] == "save_checkpoint"]
        t_final = finals[-1]["t"] if finals else float("inf")
        for e in ev:
            kind, label = e["event"], None
            if kind == "train_step":
                add(f"{s} mid-training", e, ["before"])
            elif kind in WRITERS and e["t"] < t_final:
                add(f"{s} trainer-checkpoint write", e, ["mid"])
            elif kind in ("save_checkpoint", "safetensors") and e["t"] >= t_final:
                label = f"{s} final save" if s != "00_init" else "00_init save"
                add(label, e, ["mid"] if kind == "safetensors" else ["before", "after"])
            elif kind == "generate":
                add(f"{s} generation", e, ["before"])
            elif kind == "save_to_disk":
                add(f"{s} dataset save", e, ["before", "after"])
            elif kind == "write_json":
                add(f"{s} manifest/config write", e, ["mid", "after"])
        if saves:
            add(f"{s} after the last trainer checkpoint", saves[-1], ["after"])
    return g


def plan(g: dict, n_kills: int | None, n_time: int, wall: float, rng: random.Random) -> list[dict]:
    """One random point of each group (``n_kills`` None: every group once), plus ``n_time`` time kills."""
    n_kills = len(g) + n_time if n_kills is None else n_kills
    labels = list(g)
    rng.shuffle(labels)
    picks = labels[: max(n_kills - n_time, 0)]
    while len(picks) < n_kills - n_time:
        picks.append(rng.choice(labels))
    out = []
    for label in sorted(picks):
        event, n, whens, cache = rng.choice(g[label])
        out.append({"group": label, "fault": f"{event}:{n}:{rng.choice(whens)}", "cache": cache})
    for _ in range(n_time):
        out.append(
            {"group": "random time", "kill_after_s": round(rng.uniform(1.0, wall), 2), "cache": "warm"}
        )
    return out


def trial(i: int, t: dict, work: Path, caches: dict[str, Path], ref: Path, env: dict) -> dict:
    run_dir = work / f"trial{i:02d}"
    cache = caches["warm"]
    if t["cache"] == "cold":  # a private cache with the tokenizer only: the data gets built
        cache = work / f"cache{i:02d}"
        shutil.copytree(caches["tok"], cache)
    env = {**env, "POSTTRAIN_CACHE": str(cache)}
    log = run_dir.with_suffix(".log")
    args = [*ARGS, f"run_dir={run_dir}"]
    kill = launch(args, fault=t.get("fault"), kill_after_s=t.get("kill_after_s"), env=env, log=log)
    rerun = launch(args, env=env, log=log)
    before = {
        p.parent.name: json.loads(p.read_text()).get("started_at") for p in run_dir.glob("*/manifest.json")
    }
    again = launch(args, env=env, log=log)
    after = {
        p.parent.name: json.loads(p.read_text()).get("started_at") for p in run_dir.glob("*/manifest.json")
    }
    resumed = {}
    for p in run_dir.glob("*/manifest.json"):
        if r := json.loads(p.read_text()).get("metrics", {}).get("resumed_from"):
            resumed[p.parent.name] = r
    t = {
        **t,
        "trial": i,
        "killed": kill["killed"],
        "kill_rc": kill["rc"],
        "killed_after_s": kill["wall_s"],
        "rerun_rc": rerun["rc"],
        "rerun_wall_s": rerun["wall_s"],
        "third_run_skipped_all": again["rc"] == 0 and before == after,
        "resumed_from": resumed,
    }
    return classify(t, ref, run_dir)


def classify(t: dict, ref: Path, run_dir: Path) -> dict:
    """(Re)compute a trial's differences against the reference and its verdicts."""
    diffs = [d.as_dict() for d in compare_runs(ref, run_dir)] if t["rerun_rc"] == 0 else []
    t["survived"] = t["rerun_rc"] == 0 and not [d for d in diffs if d["what"] == "status"]
    t["bit_exact"] = t["survived"] and not [d for d in diffs if d["explanation"] is None]
    t["identical"] = t["survived"] and not diffs
    t["differences"] = diffs
    return t


def summarise(trials: list[dict]) -> dict:
    killed = [t for t in trials if t["killed"]]
    return {
        "kills": len(killed),
        "not_reached": len(trials) - len(killed),
        "survived": sum(t["survived"] for t in killed),
        "bit_exact": sum(t["bit_exact"] for t in killed),
        "identical": sum(t["identical"] for t in killed),
        "weights_bit_identical": sum(
            t["survived"] and not any(d["what"] == "weights" for d in t["differences"]) for t in killed
        ),
        "third_run_skipped_all": sum(t["third_run_skipped_all"] for t in killed),
        "unexplained_differences": sum(d["explanation"] is None for t in killed for d in t["differences"]),
        "explained_differences": sum(d["explanation"] is not None for t in killed for d in t["differences"]),
    }


def recompare(a: argparse.Namespace) -> None:
    """Classify the kept trial dirs of a finished bench again (after a change to rundiff only)."""
    result = json.loads(a.out.read_text())
    for t in result["trials"]:
        classify(t, a.work / "ref", a.work / f"trial{t['trial']:02d}")
    result["summary"] = summarise(result["trials"])
    result["recompared"] = "differences reclassified by: python bench/faults.py --recompare (same trial dirs)"
    a.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    a.out.with_suffix(".md").write_text(to_markdown(result))
    print(to_markdown(result))


def to_markdown(r: dict) -> str:
    s = r["summary"]
    lines = [
        f"# Crash recovery: {s['kills']} SIGKILLs of `posttrain run {' '.join(ARGS)}`",
        "",
        f"Killed {s['kills']} times (kill points not reached: {s['not_reached']}), recovered {s['survived']}, "
        f"bit-exact {s['bit_exact']} (weights bit-identical: {s['weights_bit_identical']}; identical in every "
        f"metric too: {s['identical']}), third run skipped every stage: {s['third_run_skipped_all']}, "
        f"unexplained differences: {s['unexplained_differences']}. Reference runs bit-identical to "
        f"each other: {r['reference_runs_identical']}. Command: `{r['command']}`",
        "",
        "| # | where | point | killed at s | rerun | survived | 3rd run skips all | bit-exact | differences |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in r["trials"]:
        point = t.get("fault") or f"t={t.get('kill_after_s')}s"
        expl = sorted({d["what"].split(".")[-1] for d in t["differences"]})
        diff = ("explained: " + ", ".join(expl)) if expl else "none"
        if any(d["explanation"] is None for d in t["differences"]):
            diff = "UNEXPLAINED: " + "; ".join(
                d["what"] for d in t["differences"] if d["explanation"] is None
            )
        killed = t["killed_after_s"] if t["killed"] else "not reached"
        lines.append(
            f"| {t['trial']} | {t['group']} | `{point}` | {killed} | {t['rerun_rc']} | {t['survived']} | "
            f"{t['third_run_skipped_all']} | {t['bit_exact']} | {diff} |"
        )
    lines += ["", "Explanations of the explained differences:", ""]
    for what, why in sorted(
        {
            (d["what"], d["explanation"].split(": ", 1)[-1])
            for t in r["trials"]
            for d in t["differences"]
            if d["explanation"]
        }
    ):
        lines.append(f"- `{what}`: {why}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=None, help="default: one per kill-point group + time kills")
    ap.add_argument("--time-kills", type=int, default=3, help="how many of the kills are at random times")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/posttrain-faults"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "faults.json")
    ap.add_argument("--recompare", action="store_true", help="only reclassify the trials kept in --work")
    a = ap.parse_args()
    if a.recompare:
        return recompare(a)
    shutil.rmtree(a.work, ignore_errors=True)
    a.work.mkdir(parents=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    cold_cache = a.work / "cache"
    cold, wall = traced(a.work / "ref", cold_cache, a.work / "ref.trace", env)
    tok = a.work / "cache-tokenizer-only"
    tok.mkdir()
    for p in cold_cache.glob("tokenizer-*"):
        shutil.copytree(p, tok / p.name)
    warm, _ = traced(a.work / "ref-warm", cold_cache, a.work / "ref-warm.trace", env)
    ref_same = not compare_runs(a.work / "ref", a.work / "ref-warm")
    g = groups(cold, warm)
    todo = plan(g, a.kills, a.time_kills, wall, random.Random(a.seed))
    trials = []
    for i, t in enumerate(todo):
        trials.append(trial(i, t, a.work, {"warm": cold_cache, "tok": tok}, a.work / "ref", env))
        tr = trials[-1]
        print(
            f"[{i + 1}/{len(todo)}] {t['group']} {t.get('fault') or t.get('kill_after_s')}: killed={tr['killed']} "
            f"survived={tr['survived']} bit_exact={tr['bit_exact']} diffs={len(tr['differences'])}",
            flush=True,
        )
    summary = summarise(trials)
    result = {
        "command": "nice -n 19 python bench/faults.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "pipeline": ARGS,
        "seed": a.seed,
        "reference_wall_s": wall,
        "reference_runs_identical": ref_same,
        "groups": sorted(g),
        "summary": summary,
        "bench_wall_s": round(time.time() - t0, 1),
        "trials": trials,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    a.out.with_suffix(".md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
