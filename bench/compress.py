"""Does distillation recover a pruned model better than fine-tuning? ``nano2_compress``, over seeds.

    python bench/compress.py [--out runs/compress] [--seeds 0 1 2] [--no-run] [overrides ...]

Per seed, ``posttrain run pipeline=nano2_compress run_dir=<out>/seed<k> seed=<k>`` (finished stages
are skipped): the nano2_tiny SFT model (the teacher) is pruned on every axis, then retrained two ways
on the same tokens, batches and steps: ``distill`` (forward KL to the teacher) and ``ce_control``
(cross-entropy on the labels). The seed sets the teacher's init and every stage's data order, so each
seed is a full replicate. Every loss is the same quantity (``posttrain.compress.kd.heldout``): token-
mean cross-entropy on the assistant tokens of the sft validation split, never trained on.

Reported per seed and as the mean over seeds with a 95 % t-interval (n - 1 degrees of freedom):
the pruning cost (pruned - teacher loss), distill - ce_control (loss, KL to the teacher), the share
of the pruning cost each recovers, and the eval stage's paired held-out accuracy deltas (distill vs
ce_control, prune vs teacher) with their per-seed bootstrap intervals. Wall time per seed, this
machine. Writes ``bench/results/compress.json`` and ``compress.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scipy import stats

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
ACCURACY = {  # eval manifest keys (the model is the distilled student)
    "distill_vs_ce": "delta_vs_ce_control.accuracy",
    "distill_vs_teacher": "delta_vs_sft.accuracy",
    "prune_vs_teacher": "prune.delta_vs_sft.accuracy",
}


def t_interval(values: list[float], level: float = 0.95) -> list[float] | None:
    """mean ± t_{n-1} s / sqrt(n); None below two values."""
    if len(values) < 2:
        return None
    m, s = statistics.fmean(values), statistics.stdev(values)
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * s / len(values) ** 0.5
    return [round(m - half, 5), round(m + half, 5)]


def _manifest(run_dir: Path, stage: str) -> dict[str, Any]:
    found = sorted(run_dir.glob(f"[0-9]*_{stage}/manifest.json"))
    if not found:
        raise SystemExit(f"bench/compress.py: no {stage} stage under {run_dir}; the pipeline did not finish")
    m = json.loads(found[-1].read_text())
    if m["status"] != "done":
        raise SystemExit(f"bench/compress.py: {run_dir}/{stage} is {m['status']}")
    return m


def seed_row(run_dir: Path) -> dict[str, Any]:
    """One seed's numbers from its manifests."""
    prune, dist, ce, ev = (
        _manifest(run_dir, s)["metrics"] for s in ("prune", "distill", "ce_control", "eval")
    )
    teacher, pruned = prune["initial_eval_loss"], prune["final_eval_loss"]
    cost = pruned - teacher
    row = {
        "params_teacher": prune["params_before"],
        "params_pruned": prune["params_after"],
        "removed_layers": prune["removed_layers"],
        "loss_teacher": teacher,
        "loss_pruned": pruned,
        "loss_distill": dist["final_eval_loss"],
        "loss_ce_control": ce["final_eval_loss"],
        "kl_distill": dist["final_eval_kl"],
        "kl_ce_control": ce["final_eval_kl"],
        "prune_cost": cost,
        "distill_minus_ce": dist["final_eval_loss"] - ce["final_eval_loss"],
        "recovered_distill": (pruned - dist["final_eval_loss"]) / cost if cost > 0 else None,
        "recovered_ce": (pruned - ce["final_eval_loss"]) / cost if cost > 0 else None,
        "eval_tokens": dist["eval_tokens"],
        "accuracy": {
            t: ev.get(f"{'' if t == 'model' else t + '.'}accuracy_all")
            for t in ("sft", "prune", "ce_control", "model")
        },
    }
    for name, key in ACCURACY.items():
        row[f"acc_{name}"], row[f"acc_{name}_ci"] = ev.get(f"{key}_all"), ev.get(f"{key}_ci_all")
    return row


SUMMARISED = (
    "prune_cost",
    "distill_minus_ce",
    "recovered_distill",
    "recovered_ce",
    "kl_distill",
    "kl_ce_control",
)
SUMMARISED += ("acc_distill_vs_ce", "acc_prune_vs_teacher", "acc_distill_vs_teacher")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for k in SUMMARISED:
        vals = [r[k] for r in rows if r.get(k) is not None]
        out[k] = {
            "mean": round(statistics.fmean(vals), 5) if vals else None,
            "ci95": t_interval(vals),
            "n": len(vals),
        }
    out["distill_better_seeds"] = sum(r["distill_minus_ce"] < 0 for r in rows)
    out["prune_hurt_seeds"] = sum(r["prune_cost"] > 0 for r in rows)
    return out


def to_markdown(res: dict[str, Any]) -> str:
    s = res["summary"]

    def ci(k: str) -> str:
        c = s[k]["ci95"]
        return f"{s[k]['mean']:+.4f}" + (f" [{c[0]:+.4f}, {c[1]:+.4f}]" if c else "")

    lines = [
        f"# nano2_compress over {len(res['seeds'])} seeds ({res['machine']})",
        "",
        "Held-out loss: token-mean cross-entropy on the sft validation split's assistant tokens.",
        "",
        "| seed | teacher | pruned | distill | ce_control | distill - ce | KL distill | KL ce | acc distill - ce [95 %] | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for seed, r in zip(res["seeds"], res["rows"]):
        acc = r["acc_distill_vs_ce"]
        acc_s = (
            "-"
            if acc is None
            else f"{acc:+.3f} [{r['acc_distill_vs_ce_ci'][0]:+.3f}, {r['acc_distill_vs_ce_ci'][1]:+.3f}]"
        )
        lines.append(
            f"| {seed} | {r['loss_teacher']:.4f} | {r['loss_pruned']:.4f} | {r['loss_distill']:.4f} | "
            f"{r['loss_ce_control']:.4f} | {r['distill_minus_ce']:+.4f} | {r['kl_distill']:.4f} | "
            f"{r['kl_ce_control']:.4f} | {acc_s} | {res['wall_s'][str(seed)]} |"
        )
    lines += [
        "",
        f"- pruning cost (pruned - teacher): {ci('prune_cost')} (worse on {s['prune_hurt_seeds']} of {len(res['rows'])} seeds)",
        f"- distill - ce_control: {ci('distill_minus_ce')} (distill lower on {s['distill_better_seeds']} of {len(res['rows'])} seeds)",
        f"- share of the pruning cost recovered: distill {ci('recovered_distill')}, ce_control {ci('recovered_ce')}",
        f"- KL to the teacher: distill {ci('kl_distill')}, ce_control {ci('kl_ce_control')}",
        f"- held-out accuracy, distill - ce_control: {ci('acc_distill_vs_ce')}; prune - teacher: {ci('acc_prune_vs_teacher')}",
        "",
        f"Command: `{res['command']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/compress")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--no-run", action="store_true", help="only read finished runs")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    out, wall = Path(a.out), {}
    for seed in a.seeds:
        run_dir = out / f"seed{seed}"
        if not a.no_run:
            t0 = time.time()
            cmd = [
                sys.executable,
                "-m",
                "posttrain.cli",
                "run",
                "pipeline=nano2_compress",
                f"run_dir={run_dir}",
                f"seed={seed}",
                *a.overrides,
            ]
            subprocess.run(cmd, check=True, cwd=ROOT)
            wall[str(seed)] = round(time.time() - t0, 1)
        else:
            wall[str(seed)] = round(
                sum(
                    (json.loads(p.read_text()).get("finished_at") or 0)
                    - (json.loads(p.read_text()).get("started_at") or 0)
                    for p in run_dir.glob("[0-9]*_*/manifest.json")
                ),
                1,
            )
    rows = [seed_row(out / f"seed{s}") for s in a.seeds]
    res = {
        "seeds": a.seeds,
        "rows": rows,
        "summary": summarise(rows),
        "wall_s": wall,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
        "command": "python bench/compress.py " + " ".join(sys.argv[1:]),
    }
    dest = ROOT / "bench" / "results"
    (dest / "compress.json").write_text(json.dumps(res, indent=2) + "\n")
    (dest / "compress.md").write_text(to_markdown(res))
    print(to_markdown(res))


if __name__ == "__main__":
    main()
