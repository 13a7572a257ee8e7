"""Nano 2's two-phase architecture search, the pure part: candidates, the memory filter, the ranking
and the tables (``posttrain.experiments.nas`` runs the stages).

Phase 1 (depth): prune the teacher to each of ``depths`` layers (widths kept), distil each for the same
short budget, keep the depth with the lowest held-out loss. Nano 2: 52 / 54 / 56 of 62 layers scored
44.9 / 47.4 / 51.5 after short distillation; 56 was kept.

Phase 2 (width): every combination of the width grid at that depth whose inference memory
(``compress.memory.plan_memory``: weights + KV cache + Mamba state at ``context`` and ``batch``) fits the
budget; the ``max_candidates`` of them using the most memory (closest to the budget, as Nano 2 ranked
its candidates by memory first) are distilled for the same short budget and ranked by held-out loss,
losses within ``tie_tolerance`` of the best counting as tied and ranked by measured decode throughput.
Nano 2 kept hidden 4480, FFN 15680, 128 Mamba heads.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from typing import Any

from posttrain.compress.memory import Arch, MemoryPlan, plan_memory

AXES = ("hidden_size", "intermediate_size", "mamba_num_heads", "num_attention_heads")
SHORT = {"hidden_size": "h", "intermediate_size": "f", "mamba_num_heads": "m", "num_attention_heads": "a"}


@dataclass(frozen=True)
class Width:
    """One width candidate; None keeps the teacher's size on that axis."""

    hidden_size: int | None = None
    intermediate_size: int | None = None
    mamba_num_heads: int | None = None
    num_attention_heads: int | None = None

    def name(self) -> str:
        """A stage-name-safe tag, e.g. ``h112_f192`` (``full`` when nothing is cut)."""
        return "_".join(f"{SHORT[k]}{v}" for k, v in asdict(self).items() if v is not None) or "full"

    def targets(self) -> dict[str, int | None]:
        return asdict(self)


def width_grid(grid: dict[str, list[int]]) -> list[Width]:
    """Every combination of the listed sizes; an axis with an empty list is kept as it is."""
    axes = [k for k in AXES if grid.get(k)]
    return [Width(**dict(zip(axes, combo))) for combo in itertools.product(*(grid[k] for k in axes))]


def candidate_arch(base: Arch, pattern: str, w: Width) -> Arch:
    """``base`` at the depth-pruned ``pattern`` with ``w``'s widths (None keeps ``base``'s)."""
    return replace(base, pattern=pattern, **{k: v for k, v in w.targets().items() if v is not None})


def admit(
    base: Arch, pattern: str, widths: list[Width], *, budget_gib: float, max_candidates: int, **memory: Any
) -> tuple[list[tuple[Width, MemoryPlan]], list[tuple[Width, MemoryPlan]]]:
    """(kept, rejected): each width with its memory plan at ``budget_gib`` (``memory``: context, batch,
    dtype, ssm_cache_dtype). Kept: the ``max_candidates`` that fit using the most memory; rejected:
    every other one, over budget or past the cut, so the tables show what the budget ruled out."""
    plans = [
        (w, plan_memory(candidate_arch(base, pattern, w), budget_gib=budget_gib, **memory)) for w in widths
    ]
    fits = sorted((x for x in plans if x[1].fits), key=lambda x: -x[1].total_gib)
    kept = fits[:max_candidates]
    return kept, [x for x in plans if x not in kept]


def pick_depth(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Phase 1's winner: the lowest held-out loss, the deeper model on an exact tie."""
    return min(rows, key=lambda r: (r["final_eval_loss"], -r["num_layers"]))


def rank(rows: list[dict[str, Any]], tie_tolerance: float) -> list[dict[str, Any]]:
    """Rows sorted best first, each given ``rank`` (1-based) and ``tied_with_best``: those within
    ``tie_tolerance`` of the lowest loss come first, by throughput (higher first), then the rest by loss."""
    best = min(r["final_eval_loss"] for r in rows)
    for r in rows:
        r["tied_with_best"] = r["final_eval_loss"] <= best + tie_tolerance
    out = sorted(
        rows,
        key=lambda r: (
            not r["tied_with_best"],
            -r["tokens_per_s"] if r["tied_with_best"] else r["final_eval_loss"],
        ),
    )
    for i, r in enumerate(out, 1):
        r["rank"] = i
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> list[str]:
    out = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols)]
    return out + ["| " + " | ".join(_fmt(r.get(k)) for _, k in cols) + " |" for r in rows]


def to_markdown(report: dict[str, Any]) -> str:
    """The search as Nano 2 reports it: the depth table, then the width candidates with memory,
    held-out loss and throughput, and what the budget ruled out."""
    m = report["memory"]
    lines = [
        f"# Two-phase NAS ({report['pipeline']}): teacher {report['teacher']['params']:,} params, "
        f"held-out loss {report['teacher']['eval_loss']:.4f}",
        "",
        f"Memory at context {m['context']:,}, batch {m['batch']}, budget {m['budget_gib']:.4g} GiB; "
        f"every candidate distilled {report['distill_steps']} steps; loss: held-out token-mean CE.",
        "",
        "## Phase 1: depth",
        "",
        *_table(
            report["phase1"],
            [("layers", "num_layers"), ("pattern", "pattern"), ("params", "params"),
             ("loss after prune", "pruned_eval_loss"), ("loss after distill", "final_eval_loss"),
             ("KL to teacher", "final_eval_kl"), ("kept", "picked")],
        ),
        "",
        f"## Phase 2: width at {report['depth']} layers",
        "",
        *_table(
            report["phase2"],
            [("rank", "rank"), ("candidate", "name"), ("params", "params"), ("memory GiB", "total_gib"),
             ("loss after prune", "pruned_eval_loss"), ("loss after distill", "final_eval_loss"),
             ("tokens/s", "tokens_per_s"), ("speedup", "speedup"), ("tied with best", "tied_with_best")],
        ),
        "",
        "Not distilled (over the budget, or past the max_candidates that use the most memory):",
        "",
        *_table(report["rejected"], [("candidate", "name"), ("memory GiB", "total_gib"), ("fits", "fits")]),
        "",
    ]  # fmt: skip
    return "\n".join(lines)
