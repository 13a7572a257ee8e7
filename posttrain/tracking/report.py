"""``posttrain report <run_dir>``: a markdown report with loss/reward curves for a pipeline run.

Reads only what the run directory holds (works offline, without W&B): ``pipeline.json`` for the
stage order (plus ``00_init``), each stage's ``manifest.json`` and ``metrics.jsonl``, and every
``*/eval.json``. Writes ``<run_dir>/report/report.md`` and ``<run_dir>/report/<NN>_<stage>_curves.png``.
Plots go through matplotlib's Agg canvas directly, so no global backend is switched.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from posttrain import PosttrainError
from posttrain.evals.claims import check_all, claims_markdown
from posttrain.pipeline.manifest import ManifestError
from posttrain.pipeline.rundir import RunDir

KEY_METRICS = ("train_loss", "final_eval_loss", "eval_loss", "reward", "accuracy_on", "accuracy_off")
_NOISE = re.compile(r"(runtime|per_second|flos|epoch|num_tokens|resumed_from|global_step)")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def curves(records: list[dict[str, Any]]) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """Per panel (loss / reward / learning rate), per key, (steps, values). A step logged twice (a
    resumed stage re-logs the steps after its last checkpoint) keeps the later value."""
    series: dict[str, dict[int, float]] = {}
    for r in records:
        for k, v in r.items():
            if k not in ("step", "time") and _num(v) and "step" in r:
                series.setdefault(k, {})[int(r["step"])] = float(v)

    def panel(match) -> dict[str, tuple[list[int], list[float]]]:
        return {k: (sorted(s), [s[i] for i in sorted(s)]) for k, s in sorted(series.items()) if match(k)}

    panels = {
        "loss": panel(lambda k: k.endswith("loss") and not k.startswith(("train_", "final_"))),
        "reward": panel(lambda k: "reward" in k and not k.endswith("std") and not k.startswith("frac_")),
        "learning rate": panel(lambda k: k == "learning_rate"),
    }
    return {name: p for name, p in panels.items() if p}


def plot_curves(title: str, panels: dict[str, dict[str, tuple[list[int], list[float]]]], path: Path) -> Path:
    """One row of subplots (one per panel) written to ``path`` as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (name, series) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels.items()):
        for key, (steps, values) in series.items():
            ax.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3, label=key)
        ax.set(title=f"{title}: {name}", xlabel="step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def key_metrics(metrics: dict[str, Any], n: int = 4) -> str:
    """A few headline metrics of a manifest: the usual suspects first, then whatever is left."""
    keys = [k for k in KEY_METRICS if k in metrics]
    keys += [k for k in metrics if k not in keys and "/" not in k and not _NOISE.search(k)]
    return ", ".join(f"{k}={_fmt(metrics[k])}" for k in keys[:n] if _num(metrics[k]))


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(_fmt(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def eval_tables(run_dir: Path) -> list[str]:
    """For each ``*/eval.json`` (``{model: {metric: value}, "deltas": ...}``): a summary table (metrics
    without a ``/``) and a per-category table, one row per metric and one column per model; the
    paired deltas with their intervals are the eval stage's own ``eval.md``, linked."""
    lines: list[str] = []
    for path in sorted(run_dir.glob("*/eval.json")):
        results: dict[str, dict[str, Any]] = json.loads(path.read_text())
        results.pop("deltas", None)
        models = list(results)
        keys = list(dict.fromkeys(k for m in models for k in results[m]))
        lines += ["", f"## Eval: `{path.parent.name}`", ""]
        for title, chosen in (("Summary", [k for k in keys if "/" not in k]), ("By category and mode", None)):
            chosen = chosen if chosen is not None else [k for k in keys if "/" in k]
            if chosen:
                rows = [[k] + [results[m].get(k) for m in models] for k in chosen]
                lines += [f"### {title}", "", *_table(["metric", *models], rows), ""]
    return lines


def render_report(run_dir: Path) -> dict[str, Path]:
    """Write ``report/report.md`` and one curves PNG per stage that logged metrics.

    Returns ``{"report": md_path, "<NN>_<stage>": png_path, ...}``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PosttrainError(f"posttrain report: {run_dir} is not a directory")
    run = RunDir(run_dir)
    entries = [e for e in run.stages() if e.manifest is not None or e.error]
    if not entries:
        raise PosttrainError(
            f"posttrain report: {run_dir} has no stage manifests (<NN>_<stage>/manifest.json); "
            "is it a pipeline run_dir?"
        )
    out_dir = run_dir / "report"
    out: dict[str, Path] = {}
    rows, images = [], []
    for e in entries:
        m, name = e.manifest, e.dir.name
        try:
            records, _ = run.metrics(e)
            note = e.error
        except ManifestError as err:  # a corrupt metrics file: the row says so, the others still render
            records, note = [], str(err)
        steps = max((r["step"] for r in records if _num(r.get("step"))), default=None)
        wall = m.wall_s if m else None
        rows.append(
            [
                name,
                m.kind if m else "",
                e.status,
                f"{wall:.1f}" if wall else "",
                steps,
                note or key_metrics(m.metrics or {}),
                (m.fingerprint or "")[:10] if m else "",
                m.wandb_run_id if m else None,
            ]
        )
        panels = curves(records)
        if panels:
            out[name] = plot_curves(name, panels, out_dir / f"{name}_curves.png")
            images += [f"### {name}", "", f"![{name} curves]({name}_curves.png)", ""]
    header = ["stage", "kind", "status", "wall s", "steps", "key metrics", "fingerprint", "W&B run"]
    lines = [f"# Run report: `{run_dir.resolve().name}`", "", "## Stages", "", *_table(header, rows)]
    checks = run_claims(run_dir)
    if any(c["passed"] is not None for c in checks):
        lines += ["", "## What this run shows", "", claims_markdown(checks)]
    lines += eval_tables(run_dir)
    if images:
        lines += ["", "## Training curves", "", *images]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.md").write_text("\n".join(lines).rstrip() + "\n")
    out["report"] = out_dir / "report.md"
    return out


def run_claims(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's declared claims (``RunDir.claims``) checked against its done stages' manifests."""
    rd = RunDir(run_dir)
    return check_all(rd.claims(), {m.stage: m.metrics or {} for m in rd.done()})


def report_main(argv: list[str] | None = None) -> int:
    """``posttrain report <run_dir> [claims=true]``: render the report and print the markdown file's path."""
    from posttrain.config.commands import ReportConfig, parse_command

    cfg = parse_command(
        ReportConfig, list(sys.argv[1:] if argv is None else argv), "posttrain report", ("run_dir",)
    )
    if cfg is None:
        return 0
    print(render_report(Path(cfg.run_dir))["report"])
    if cfg.claims:
        print(claims_markdown(run_claims(cfg.run_dir)), end="")
    return 0
