"""Eval stage: held-out metrics per domain and reasoning mode, for the input checkpoint and any
baselines (e.g. ``init``), written to ``eval.json`` / ``eval.md`` and the manifest.

Modes: ``on`` (``/think``), ``off`` (``/no_think``) and ``budget`` (``/think`` with the thinking
budget forced at ``budget_tokens`` and the trace closed, as at inference with a budget). Per
(category, mode): accuracy (mean verifier reward of the answer), format (the share that is
well-formed *and* finished: the think block follows the mode and the answer ends with EOS within
``max_new_tokens``; an untrained model's endless text is not well-formed), mean thinking tokens and
mean generated tokens. Safety adds refusal rate on harmful prompts and over-refusal on benign ones.
Greedy decoding throughout. With ``sweep_budgets`` the stage also writes the budget sweep of
``posttrain eval budget`` (accuracy, tokens, well-formed share per budget and domain) to ``budget/``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from posttrain.inference.budget import generate_budgeted
from posttrain.inference.generate import render_prompts, with_reasoning_mode
from posttrain.inference.sweep import budget_sweep, check_budgets, parse_budgets, write_report
from posttrain.models import load_model, load_tokenizer
from posttrain.pipeline.manifest import write_json_atomic
from posttrain.rewards import score
from posttrain.rewards.format import format_reward
from posttrain.rewards.safety import is_refusal
from posttrain.stages.base import StageInputs, StageOutputs, link_checkpoint, load_view


def select_rows(inputs: StageInputs, split: str, per_category: int) -> list[dict]:
    rows = load_view(inputs, "rl", split).to_list()
    seen: dict[str, int] = defaultdict(int)
    out = []
    for r in rows:
        if seen[r["category"]] < per_category:
            seen[r["category"]] += 1
            out.append(r)
    return out


def evaluate(
    model, tok, rows: list[dict], *, max_new_tokens: int, budget: int, batch_size: int
) -> dict[str, Any]:
    """Metrics keyed ``<category>/<mode>/<metric>`` plus summary keys (``format_on`` ...)."""
    acc: dict[str, list[float]] = defaultdict(list)
    for mode in ("on", "off", "budget"):
        texts = render_prompts(
            tok, [with_reasoning_mode(r["prompt"], mode) for r in rows], [r.get("tools") for r in rows]
        )
        outs = generate_budgeted(
            model,
            tok,
            texts,
            budget=budget if mode == "budget" else None,
            max_tokens=max_new_tokens,
            grace_tokens=0,
            batch_size=batch_size,
            progress=f"eval {mode}",
        )
        reasoning = "off" if mode == "off" else "on"
        for r, o in zip(rows, outs):
            cat = r["category"]
            s = score(cat, r["metadata"], o.text, reasoning)
            fmt = format_reward(o.text, reasoning) * float(o.finish_reason == "stop")
            for key in (f"{cat}/{mode}", f"all/{mode}"):
                acc[f"{key}/accuracy"].append(s)
                acc[f"{key}/format"].append(fmt)
                acc[f"{key}/tokens"].append(o.total_tokens)
                acc[f"{key}/think_tokens"].append(
                    0 if mode == "off" and "</think>" not in o.text else o.thinking_tokens
                )
            if cat == "safety":
                harmful = (
                    json.loads(r["metadata"]).get("harmful")
                    if isinstance(r["metadata"], str)
                    else r["metadata"].get("harmful")
                )
                acc[f"safety/{mode}/{'refusal_rate' if harmful else 'over_refusal'}"].append(
                    float(is_refusal(o.content))
                )
    metrics = {k: sum(v) / len(v) for k, v in sorted(acc.items())}
    for mode in ("on", "off", "budget"):
        metrics[f"format_{mode}"] = metrics.get(f"all/{mode}/format")
        metrics[f"accuracy_{mode}"] = metrics.get(f"all/{mode}/accuracy")
        metrics[f"think_tokens_{mode}"] = metrics.get(f"all/{mode}/think_tokens")
        metrics[f"tokens_{mode}"] = metrics.get(f"all/{mode}/tokens")
    return metrics


def to_markdown(results: dict[str, dict[str, Any]]) -> str:
    models = list(results)
    keys = [k for k in results[models[0]] if "/" not in k] + sorted(
        {k for r in results.values() for k in r if "/" in k}
    )
    lines = ["| metric | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for k in keys:
        vals = [results[m].get(k) for m in models]
        lines.append(f"| {k} | " + " | ".join("" if v is None else f"{v:.3f}" for v in vals) + " |")
    return "\n".join(lines) + "\n"


def run(cfg, inputs: StageInputs) -> StageOutputs:
    torch.manual_seed(inputs.seed)
    rows = select_rows(inputs, cfg.split, cfg.max_per_category)
    targets = {"model": inputs.checkpoint} | {
        k.split(":", 1)[1]: v for k, v in inputs.checkpoints.items() if k.startswith("baseline:")
    }
    budgets = parse_budgets(list(cfg.sweep_budgets)) if cfg.sweep_budgets else None
    if budgets:
        check_budgets(budgets, cfg.max_new_tokens)  # a bad budget fails before any generation
    outputs = {"report": str(inputs.stage_dir / "eval.md")}
    results = {}
    for name, ckpt in targets.items():
        model = load_model(ckpt, dtype=inputs.dtype, trust_remote_code=inputs.trust_remote_code)
        tok = load_tokenizer(ckpt, trust_remote_code=inputs.trust_remote_code)
        results[name] = evaluate(
            model,
            tok,
            rows,
            max_new_tokens=cfg.max_new_tokens,
            budget=cfg.budget_tokens,
            batch_size=cfg.batch_size,
        )
        if name == "model" and budgets:
            outputs["budget_sweep"] = str(sweep(cfg, inputs, model, tok, rows, budgets))
    write_json_atomic(inputs.stage_dir / "eval.json", results)
    (inputs.stage_dir / "eval.md").write_text(to_markdown(results))
    metrics = {k: v for k, v in results["model"].items() if "/" not in k}
    for name in targets:
        if name != "model":
            metrics.update({f"{name}.{k}": v for k, v in results[name].items() if "/" not in k})
    ckpt = link_checkpoint(inputs.checkpoint, inputs.checkpoint_dir)
    return StageOutputs(checkpoint=ckpt, metrics=metrics, outputs=outputs)


def sweep(cfg, inputs: StageInputs, model, tok, rows: list[dict], budgets: list[int | None]) -> Path:
    """The budget sweep of ``posttrain eval budget`` on the same held-out rows; returns its markdown path."""
    res = budget_sweep(model, tok, rows, budgets, max_tokens=cfg.max_new_tokens, grace=cfg.sweep_grace,
                       batch_size=cfg.batch_size)  # fmt: skip
    meta = {"checkpoint": inputs.checkpoint, "split": cfg.split, "budgets": budgets,
            "max_tokens": cfg.max_new_tokens, "grace": cfg.sweep_grace, "n_prompts": len(rows)}  # fmt: skip
    return write_report(res, inputs.stage_dir / "budget", meta)["md"]
