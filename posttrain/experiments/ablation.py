"""The truncation ablation (Nano 2 report, Fig. 5): train ``nano2_tiny`` with and without
truncated-thinking SFT samples and compare both on the same thinking-budget sweep, over seeds.

    posttrain ablate truncation out=<dir> [budgets=[0,4,8,16,32,none]] [stages=sft|all]
        [max_tokens=96] [grace=4] [max_per_category=16] [seeds=[0,1,2]] [-- extra hydra overrides]

Both variants share every setting but ``data.truncate_fraction`` (the recipe's value vs 0), so they
see the same prompts and held-out test split. Each seed is the pipeline's ``seed`` (model init and
data order); the data itself is the same for every seed. Expected shape at full scale: without
truncation training, outputs under small budgets are less often well-formed and answers grow longer.
Writes ``ablation.json`` (per-seed rows and the mean/std over seeds), ``ablation.md`` and
``ablation.png`` (means, with the spread over seeds as error bars) under ``out``; each seed's runs
live in ``out/seed<k>/<variant>``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from posttrain import PosttrainError
from posttrain.evals.rows import load_rows
from posttrain.evals.sweep import budget_sweep, check_budgets, in_process, parse_budgets, plot
from posttrain.evals.sweep import to_markdown as sweep_markdown

VARIANTS = {"with_truncation": "nano2_tiny", "no_truncation": "nano2_tiny_notrunc"}
METRICS = ("well_formed", "accuracy", "mean_thinking_tokens", "mean_total_tokens", "respected_budget")
PLOTTED = ("well_formed", "accuracy", "mean_total_tokens")


def train_variants(out: Path, stages: str, seed: int, extra: list[str]) -> dict[str, str]:
    """Run both pipelines (finished stages are skipped); returns {variant: final checkpoint}."""
    from posttrain.config.compose import compose
    from posttrain.pipeline.runner import run_pipeline

    ckpts = {}
    for variant, pipeline in VARIANTS.items():
        overrides = [f"pipeline={pipeline}", f"run_dir={out / variant}", f"seed={seed}", *extra]
        if stages == "sft":
            overrides.append("pipeline.stages=[sft]")
        elif stages != "all":
            raise PosttrainError(f"stages: use sft or all, got {stages!r}")
        done = run_pipeline(compose(overrides))
        last = [m for m in done.values() if m.kind != "eval"][-1]
        ckpts[variant] = last.checkpoint
    return ckpts


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (budget, variant): the mean of each metric over seeds and its sample std (0 for one seed)."""
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["budget"], r["variant"]), []).append(r)
    out = []
    for (budget, variant), rs in groups.items():
        agg: dict[str, Any] = {"budget": budget, "variant": variant, "seeds": sorted(r["seed"] for r in rs)}
        for m in METRICS:
            vals = [float(r[m]) for r in rs]
            agg[m] = statistics.fmean(vals)
            agg[f"{m}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(agg)
    out.sort(key=lambda r: (r["budget"] is None, r["budget"] or 0, r["variant"]))
    return out


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """The aggregated table: ``mean ± std`` over seeds per metric."""
    return sweep_markdown(rows, ("budget", "variant", *METRICS), std="_std")


def run_ablation(
    out: Path, *, budgets, stages: str, max_tokens: int, grace: int, max_per_category: int, seeds, extra=()
) -> list[dict[str, Any]]:
    """Train both variants per seed, sweep budgets on each, write the reports; returns the aggregate."""
    from posttrain.models import load_model, load_tokenizer

    check_budgets(budgets, max_tokens, grace)
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        ckpts = train_variants(out / f"seed{seed}", stages, seed, list(extra))
        rows_in = load_rows(str(out / f"seed{seed}" / "with_truncation" / "data"), "test", max_per_category)
        for variant, ckpt in ckpts.items():
            model, tok = load_model(ckpt), load_tokenizer(ckpt)
            engine = in_process(model, tok, max_tokens=max_tokens, grace=grace)
            for r in budget_sweep(engine, tok, rows_in, budgets):
                if r["domain"] == "all":
                    per_seed.append({"variant": variant, "checkpoint": ckpt, "seed": seed, **r})
    rows = aggregate(per_seed)
    report = {
        "seeds": list(seeds),
        "stages": stages,
        "max_tokens": max_tokens,
        "grace": grace,
        "mean": rows,
        "per_seed": per_seed,
    }
    (out / "ablation.json").write_text(json.dumps(report, indent=2))
    (out / "ablation.md").write_text(to_markdown(rows))
    plot(rows, out / "ablation.png", metrics=PLOTTED, series="variant", std="_std")
    return rows


def ablation_main(argv: list[str]) -> int:
    """``posttrain ablate truncation out=<dir> [key=value ...] [-- hydra overrides]``; the settings and
    their defaults are ``posttrain.config.commands.AblateConfig`` (the sweep's are ``SweepConfig``)."""
    from posttrain.config.commands import AblateConfig, parse_command

    prog = "posttrain ablate truncation"
    if not argv or argv[0] != "truncation":
        raise PosttrainError(f"usage: {prog} out=<dir> [key=value ...]; see `{prog} --help`")
    extra: list[str] = []
    args = argv[1:]
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1 :]
    cfg = parse_command(AblateConfig, args, prog)
    if cfg is None:
        return 0
    if not cfg.seeds:
        raise PosttrainError("seeds: empty list; e.g. seeds=[0,1,2]")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = run_ablation(
        out,
        budgets=parse_budgets(cfg.budgets),
        stages=cfg.stages,
        max_tokens=cfg.max_tokens,
        grace=cfg.grace,
        max_per_category=cfg.max_per_category,
        seeds=list(cfg.seeds),
        extra=extra,
    )
    print(to_markdown(rows))
    print(f"wrote {out / 'ablation.md'} and {out / 'ablation.png'}")
    return 0
