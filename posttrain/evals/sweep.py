"""``posttrain eval budget``: accuracy and token use across thinking budgets, per domain.

Every held-out prompt is run with reasoning forced ON (``/think`` in the system turn, other flags
removed, as the eval stage's ``budget`` mode does) at each budget with the engine's budgeted generation
(a ``budget.Generate``, greedy: ``generate_budgeted`` in process, or ``generate_budgeted_http`` on the
eval stage's vLLM server; the grace window and batch size are the engine's settings), then scored with
the category's verifier (``posttrain.rewards.score``) and the format check.
One row per (budget, domain) plus ``all``: accuracy, mean thinking / total tokens, share well-formed,
share that respected the budget (thinking tokens <= B, i.e. no grace tokens used), share force-closed,
and tokens saved / accuracy lost vs the unlimited budget (``none``) when it is in the sweep.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posttrain import PosttrainError
from posttrain.evals.rows import load_rows

if TYPE_CHECKING:  # the engine modules import torch and transformers (~3 s); the config checks that
    from posttrain.inference.budget import Generate  # read check_budgets here must not pay for them

COLUMNS = (
    "budget",
    "domain",
    "n",
    "accuracy",
    "mean_thinking_tokens",
    "mean_total_tokens",
    "well_formed",
    "respected_budget",
    "forced_close",
    "tokens_saved",
    "tokens_saved_frac",
    "accuracy_lost",
)


def parse_budgets(value: str | list[Any]) -> list[int | None]:
    """``"[0,8,none]"`` (or a list) -> ``[0, 8, None]``; ``none``/``null``/``unlimited`` mean no budget."""
    items = value if isinstance(value, list) else str(value).strip().strip("[]").split(",")
    out: list[int | None] = []
    for item in items:
        s = str(item).strip().lower() if item is not None else "none"
        if not s:
            continue
        if s in ("none", "null", "unlimited", "inf"):
            out.append(None)
            continue
        try:
            out.append(int(s))
        except ValueError:
            raise PosttrainError(f"budgets: {item!r} is not an integer or 'none'") from None
    if not out:
        raise PosttrainError("budgets: empty list; e.g. budgets=[0,8,16,none]")
    return out


def check_budgets(budgets: list[int | None], max_tokens: int, grace: int = 0) -> None:
    """Raises ``PosttrainError`` naming the setting (``budgets``, ``max_tokens`` or ``grace``)."""
    if grace < 0:
        raise PosttrainError(f"grace: must be >= 0, got {grace}")
    if max_tokens <= 0:
        raise PosttrainError(f"max_tokens: must be > 0, got {max_tokens}")
    for b in budgets:
        if b is not None and b < 0:
            raise PosttrainError(f"budgets: a budget must be >= 0, got {b}")
        if b is not None and b > max_tokens:
            raise PosttrainError(
                f"budgets: budget {b} exceeds max_tokens={max_tokens}; raise max_tokens or lower it"
            )


def force_think(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Strip reasoning flags from every message and put ``/think`` into the system turn."""
    from posttrain.inference.generate import with_reasoning_mode

    return with_reasoning_mode(prompt, "on")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def in_process(model, tok, *, max_tokens: int, grace: int, batch_size: int = 8) -> Generate:
    """The sweep's engine without a server (``eval budget``, ``ablate``, ``bench/budget.py``, the eval
    stage's ``engine=hf``): ``generate_budgeted`` on ``model`` with these settings bound."""
    from posttrain.inference.budget import generate_budgeted

    return partial(
        generate_budgeted, model, tok, max_tokens=max_tokens, grace_tokens=grace, batch_size=batch_size
    )


def budget_sweep(
    generate: Generate, tok, rows: list[dict[str, Any]], budgets: list[int | None]
) -> list[dict[str, Any]]:
    """One metrics dict per (budget, domain) (domain ``all`` included), budgets in the given order.
    ``generate(texts, *, budget, progress)`` is the engine (``in_process``, or the eval stage's vLLM
    server), its max_tokens, grace window and batch size bound; check them with ``check_budgets``."""
    from posttrain.inference.generate import render_prompts
    from posttrain.rewards import score
    from posttrain.rewards.format import format_reward

    if not getattr(tok, "chat_template", None):
        raise PosttrainError("checkpoint: its tokenizer has no chat template; the budget sweep needs one")
    texts = render_prompts(tok, [force_think(r["prompt"]) for r in rows], [r.get("tools") for r in rows])
    per: dict[tuple[Any, str], dict[str, list[float]]] = {}
    for b in budgets:
        outs = generate(texts, budget=b, progress=f"budget {'none' if b is None else b}")
        for r, o in zip(rows, outs):
            vals = {
                "accuracy": score(r["category"], r["metadata"], o.text, "on"),
                "well_formed": format_reward(o.text, "on"),
                "thinking_tokens": o.thinking_tokens,
                "total_tokens": o.total_tokens,
                "respected_budget": float(b is None or o.thinking_tokens <= b),
                "forced_close": float(o.forced_close),
            }
            for dom in (r["category"], "all"):
                acc = per.setdefault((b, dom), defaultdict(list))
                for k, v in vals.items():
                    acc[k].append(float(v))
    domains = sorted({d for _, d in per} - {"all"}) + ["all"]
    out = []
    for b in budgets:
        for d in domains:
            m = per[(b, d)]
            ref = per.get((None, d))
            row = {
                "budget": b,
                "domain": d,
                "n": len(m["accuracy"]),
                "accuracy": _mean(m["accuracy"]),
                "mean_thinking_tokens": _mean(m["thinking_tokens"]),
                "mean_total_tokens": _mean(m["total_tokens"]),
                "well_formed": _mean(m["well_formed"]),
                "respected_budget": _mean(m["respected_budget"]),
                "forced_close": _mean(m["forced_close"]),
                "tokens_saved": None,
                "tokens_saved_frac": None,
                "accuracy_lost": None,
            }
            if ref is not None:
                full = _mean(ref["total_tokens"])
                row["tokens_saved"] = full - row["mean_total_tokens"]
                row["tokens_saved_frac"] = row["tokens_saved"] / full if full else 0.0
                row["accuracy_lost"] = _mean(ref["accuracy"]) - row["accuracy"]
            out.append(row)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def to_markdown(rows: list[dict[str, Any]], cols: tuple[str, ...] = COLUMNS, std: str | None = None) -> str:
    """One table row per sweep row; with ``std`` (a key suffix, e.g. ``_std``) each numeric cell that has
    a ``<col><std>`` companion reads ``mean ± std``."""

    def cell(r: dict[str, Any], c: str) -> str:
        if c == "budget" and r[c] is None:
            return "none"
        if std and f"{c}{std}" in r:
            return f"{r[c]:.3f} ± {r[f'{c}{std}']:.3f}"
        return _fmt(r[c])

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r, c) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(
    rows: list[dict[str, Any]],
    path: Path,
    *,
    metrics: tuple[str, ...] = ("accuracy", "mean_total_tokens"),
    series: str = "domain",
    std: str | None = None,
) -> None:
    """One panel per metric against the budget (``none`` drawn as the last, categorical x position), one
    line per value of ``series`` (``all`` thick); with ``std`` the ``<metric><std>`` values as error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    xs = {b: i for i, b in enumerate(budgets)}
    fig = Figure(figsize=(4.5 * len(metrics) + 1, 4))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for name in dict.fromkeys(r[series] for r in rows):
            pts = [r for r in rows if r[series] == name]
            ax.errorbar(
                [xs[r["budget"]] for r in pts],
                [r[metric] for r in pts],
                yerr=[r[f"{metric}{std}"] for r in pts] if std else None,
                marker="o",
                capsize=3 if std else 0,
                label=name,
                linewidth=2.5 if name == "all" else 1.2,
            )
        ax.set_xticks(range(len(budgets)), ["none" if b is None else str(b) for b in budgets])
        ax.set_xlabel("thinking budget (tokens)")
        ax.set_ylabel(metric)
        if metric in ("accuracy", "well_formed", "respected_budget", "forced_close"):
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    FigureCanvasAgg(fig).print_png(str(path))


def write_report(
    rows: list[dict[str, Any]], out: str | Path, meta: dict[str, Any] | None = None
) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "budget.json", "md": out / "budget.md", "png": out / "budget.png"}
    paths["json"].write_text(json.dumps({**(meta or {}), "rows": rows}, indent=2) + "\n")
    paths["md"].write_text(to_markdown(rows))
    plot(rows, paths["png"])
    return paths


def eval_budget_main(argv: list[str]) -> int:
    """``posttrain eval budget <checkpoint> out=<dir> data=<dir> [key=value ...]`` (argv after
    ``budget``); the settings and their defaults are ``posttrain.config.commands.EvalBudgetConfig``."""
    from posttrain.config.commands import EvalBudgetConfig, parse_command

    cfg = parse_command(EvalBudgetConfig, argv, "posttrain eval budget", positional=("checkpoint",))
    if cfg is None:
        return 0
    budgets = parse_budgets(cfg.budgets)
    check_budgets(budgets, cfg.max_tokens, cfg.grace)
    from posttrain.models import load_model, load_tokenizer

    ckpt = cfg.checkpoint
    tok = load_tokenizer(ckpt, what="checkpoint")  # raises when there is no chat template
    model = load_model(ckpt, dtype=cfg.dtype, what="checkpoint")
    rows = load_rows(cfg.data, cfg.split, cfg.max_per_category)
    engine = in_process(model, tok, max_tokens=cfg.max_tokens, grace=cfg.grace, batch_size=cfg.batch_size)
    res = budget_sweep(engine, tok, rows, budgets)
    meta = {
        "checkpoint": str(ckpt),
        "data": cfg.data,
        "split": cfg.split,
        "budgets": budgets,
        "max_tokens": cfg.max_tokens,
        "grace": cfg.grace,
        "n_prompts": len(rows),
    }
    paths = write_report(res, cfg.out, meta)
    print(to_markdown([r for r in res if r["domain"] == "all"]), end="")
    print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}")
    return 0
