"""``posttrain status``: one row per stage from the manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.pipeline.rundir import RunDir

KEY_METRICS = (
    "train_loss",
    "final_eval_loss",
    "pairs",
    "reward_first",
    "reward_last",
    "correctness_reward_first",
    "correctness_reward_last",
    "format_on",
    "format_off",
    "format_budget",
    "tokens_on",
    "tokens_off",
    "params_before",
    "params_after",
)


def _slurm_states(ids: list[str]) -> dict[str, str]:
    from posttrain.launch.slurm import job_states, slurm_available

    if not ids or not slurm_available()[0]:
        return {}
    return job_states(ids)


def status_rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for e in RunDir(run_dir).stages():
        m, d = e.manifest, e.dir
        if m is None:  # pending, or unreadable: shown as a row, so one bad file does not hide the others
            rows.append(
                {
                    "stage": e.name,
                    "dir": d.name,
                    "status": e.status,
                    **({"error": e.error} if e.error else {}),
                }
            )
            continue
        rows.append(
            {
                "stage": m.stage,
                "dir": d.name,
                "kind": m.kind,
                "status": m.status,
                "fingerprint": m.fingerprint,
                "metrics": m.metrics,
                "wall_s": m.wall_s,
                "checkpoint": m.checkpoint,
                "slurm_job_id": m.slurm_job_id,
                "error": m.error,
            }
        )
    states = _slurm_states([r["slurm_job_id"] for r in rows if r.get("slurm_job_id")])
    for r in rows:
        if r.get("slurm_job_id"):
            r["slurm_state"] = states.get(r["slurm_job_id"])
    return rows


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def print_status(run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"posttrain run {run_dir}")
    for col in ("stage", "kind", "status", "fingerprint", "key metrics", "wall", "checkpoint"):
        t.add_column(col)
    for r in status_rows(run_dir):
        metrics = r.get("metrics") or {}
        key = ", ".join(f"{k}={_fmt(metrics[k])}" for k in KEY_METRICS if k in metrics)
        wall = f"{r['wall_s']:.0f}s" if r.get("wall_s") is not None else ""
        job = f" (slurm {r.get('slurm_job_id')} {r.get('slurm_state') or ''})".replace(" )", ")")
        status = r["status"] + (job if r.get("slurm_job_id") else "")
        if r.get("error"):
            key = f"error: {r['error'][:150]}"
        t.add_row(
            r["stage"],
            r.get("kind", ""),
            status,
            (r.get("fingerprint") or "")[:10],
            key,
            wall,
            r.get("checkpoint") or "",
        )
    Console(width=200).print(t)
