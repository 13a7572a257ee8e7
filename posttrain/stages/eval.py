"""Eval stage: held-out metrics per domain and reasoning mode, for the input checkpoint and any
baselines (e.g. ``init``), written to ``eval.json`` / ``eval.md`` and the manifest.

Modes (``modes``, default all three): ``on`` (``/think``), ``off`` (``/no_think``) and ``budget``
(``/think`` with the thinking budget forced at ``budget_tokens`` and the trace closed, as at inference
with a budget). Per (category, mode): accuracy (mean verifier reward of the answer), format (the share
that is well-formed *and* finished: the think block follows the mode and the answer ends with EOS within
``max_new_tokens``; an untrained model's endless text is not well-formed), strict accuracy (correct
*and* well-formed: a ``/no_think`` answer that reasons and closes ``</think>`` again scores on accuracy,
not here), mean thinking tokens and mean generated tokens. Safety adds refusal rate on harmful prompts and over-refusal on benign ones.
Greedy decoding throughout.

Every (target, prompt, mode) score goes to ``scores.jsonl``; the model's prompts and completions to
``samples.jsonl``. ``posttrain.evals.report`` turns the scores into means with 95 % intervals (Wilson
or bootstrap) and the paired deltas of the model vs each baseline (``eval.json["deltas"]``, the
markdown's second table). With ``sweep_budgets`` the stage also writes the budget sweep of
``posttrain eval budget`` (accuracy, tokens, well-formed share per budget and domain) to ``budget/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from posttrain import PosttrainError
from posttrain.evals.report import deltas, step_deltas, target_metrics, to_markdown
from posttrain.evals.rows import load_rows
from posttrain.evals.sweep import budget_sweep, check_budgets, parse_budgets, write_report
from posttrain.inference.budget import generate_budgeted
from posttrain.inference.generate import metered, render_prompts, with_reasoning_mode
from posttrain.models import load_model, load_tokenizer
from posttrain.reasoning import THINK_CLOSE
from posttrain.rewards import score
from posttrain.rewards.format import format_reward
from posttrain.rewards.safety import is_refusal
from posttrain.stages.base import StageInputs, StageOutputs, link_checkpoint


def check_modes(modes: list[str], stage: str) -> list[str]:
    """The modes to evaluate, validated before any generation (the rule lives in ``config.checks``)."""
    from posttrain.config.checks import mode_errors

    for key, why in mode_errors(list(modes)):
        raise PosttrainError(f"stage.{stage}.{key}: {why}")
    return list(modes)


def item_ids(rows: list[dict]) -> list[str]:
    """One id per row: its uuid (the row index when missing), made unique with ``#<index>``."""
    out, seen = [], set()
    for i, r in enumerate(rows):
        u = str(r.get("uuid") or i)
        u = f"{u}#{i}" if u in seen else u
        seen.add(u)
        out.append(u)
    return out


def assign_modes(rows: list[dict], modes: list[str], interleave: bool) -> list[tuple[str, ...]]:
    """The modes each row is evaluated in: all of them, or with ``interleave`` one each, cycling
    through ``modes`` by the row's position within its category (so every domain sees every mode)."""
    if not interleave:
        return [tuple(modes)] * len(rows)
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        k = seen.get(r["category"], 0)
        seen[r["category"]] = k + 1
        out.append((modes[k % len(modes)],))
    return out


@contextmanager
def engine_for(
    cfg, inputs: StageInputs, name: str, ckpt: str
) -> Iterator[tuple[Callable[..., list], Any, Any]]:
    """``(generate, tokenizer, model)`` for one target. ``hf``: ``generate_budgeted`` in process (greedy,
    no grace window). ``vllm``: a vLLM server on the checkpoint and ``generate_budgeted_http``; the HF
    model is loaded only for the budget sweep (``model`` is None otherwise)."""
    tok = load_tokenizer(ckpt, trust_remote_code=inputs.trust_remote_code)
    need_model = cfg.engine == "hf" or (name == "model" and bool(cfg.sweep_budgets))
    model = (
        load_model(ckpt, dtype=inputs.dtype, trust_remote_code=inputs.trust_remote_code)
        if need_model
        else None
    )
    if cfg.engine == "hf":

        def gen(texts, *, budget, progress):
            return generate_budgeted(
                model, tok, texts, budget=budget, max_tokens=cfg.max_new_tokens, grace_tokens=0,
                batch_size=cfg.batch_size, progress=progress,
            )  # fmt: skip

        yield gen, tok, model
        return
    from posttrain.inference.vllm_server import VLLMServer, generate_budgeted_http

    log = inputs.stage_dir / f"vllm-{name}.log"
    with VLLMServer(ckpt, name=name, max_model_len=2048, dtype=inputs.dtype, log_path=log) as srv:

        def gen(texts, *, budget, progress):
            return generate_budgeted_http(
                srv.url, name, tok, texts, budget=budget, max_tokens=cfg.max_new_tokens,
                concurrency=cfg.vllm_concurrency,
            )  # fmt: skip

        yield gen, tok, model


def _harmful(meta: Any) -> bool:
    return bool((json.loads(meta) if isinstance(meta, str) else meta).get("harmful"))


def evaluate(
    generate: Callable[..., list],
    tok,
    rows: list[dict],
    ids: list[str],
    *,
    target: str,
    modes: list[str],
    budget: int,
    interleave: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(items, samples)``: one score row per (prompt, mode) (see ``posttrain.evals.report``), and the
    same rows with the rendered prompt and the completion text. ``generate(texts, budget=, progress=)``
    returns ``BudgetResult``s (``engine_for``: in-process HF or a vLLM server)."""
    items, samples = [], []
    row_modes = assign_modes(rows, modes, interleave)
    all_rows, all_ids = rows, ids
    for mode in modes:
        # grouped by domain (stable): a batch stops when its longest answer does, so short math answers
        # share batches instead of waiting on chat answers (one SmolLM2 eval of 400 prompts: 224 s vs 237 s)
        keep = sorted(
            (i for i, m in enumerate(row_modes) if mode in m), key=lambda i: all_rows[i]["category"]
        )
        rows, ids = [all_rows[i] for i in keep], [all_ids[i] for i in keep]
        texts = render_prompts(
            tok, [with_reasoning_mode(r["prompt"], mode) for r in rows], [r.get("tools") for r in rows]
        )
        outs = generate(texts, budget=budget if mode == "budget" else None, progress=f"eval {target} {mode}")
        reasoning = "off" if mode == "off" else "on"
        for r, uid, prompt, o in zip(rows, ids, texts, outs):
            cat = r["category"]
            it = {
                "target": target,
                "uuid": uid,
                "category": cat,
                "mode": mode,
                "score": float(score(cat, r["metadata"], o.text, reasoning)),
                "format": format_reward(o.text, reasoning) * float(o.finish_reason == "stop"),
                "tokens": o.total_tokens,
                "think_tokens": 0 if mode == "off" and THINK_CLOSE not in o.text else o.thinking_tokens,
            }
            if cat == "safety":
                it |= {"harmful": _harmful(r["metadata"]), "refusal": float(is_refusal(o.content))}
            items.append(it)
            samples.append({**it, "prompt": prompt, "text": o.text, "finish_reason": o.finish_reason})
    return items, samples


METRICS = ("accuracy", "strict")  # per-item values whose paired deltas go to eval.json and the manifest


def _write(path: Path, text: str) -> None:
    """Atomically: a reader (``posttrain status``, the report) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _jsonl(path: Path, rows: list[dict]) -> None:
    _write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _domain_deltas(
    slices: dict[str, dict[str, Any]], prefix: str, metric: str = "accuracy"
) -> dict[str, Any]:
    """``<prefix><metric>_<domain>`` and ``<prefix><metric>_ci_<domain>`` for every domain (both modes
    pooled) and ``all``."""
    out: dict[str, Any] = {}
    for sl, d in slices.items():
        cat, mode = sl.split("/")
        if mode == "all":
            out[f"{prefix}{metric}_{cat}"], out[f"{prefix}{metric}_ci_{cat}"] = d["delta"], d["ci"]
    return out


def run(cfg, inputs: StageInputs) -> StageOutputs:
    torch.manual_seed(inputs.seed)
    modes = check_modes(list(cfg.modes), inputs.name)  # a bad mode fails before any generation
    targets = {"model": inputs.checkpoint} | {
        k.split(":", 1)[1]: v for k, v in inputs.checkpoints.items() if k.startswith("baseline:")
    }
    budgets = parse_budgets(list(cfg.sweep_budgets)) if cfg.sweep_budgets else None
    if budgets:
        check_budgets(budgets, cfg.max_new_tokens)  # a bad budget fails before any generation
    rows = load_rows(
        inputs.data_dir,
        cfg.split,
        cfg.max_per_category,
        dict(cfg.category_caps or {}),
        cfg.max_prompts,
        where=f"stage.{inputs.name}.split",
    )
    ids = item_ids(rows)
    d = inputs.stage_dir
    outputs = {
        "report": str(d / "eval.md"),
        "scores": str(d / "scores.jsonl"),
        "samples": str(d / "samples.jsonl"),
        "engine": cfg.engine,
    }
    results: dict[str, dict[str, Any]] = {}
    items: dict[str, list[dict[str, Any]]] = {}
    for name, ckpt in targets.items():
        with engine_for(cfg, inputs, name, ckpt) as (generate, tok, model):
            with metered() as gen:
                items[name], samples = evaluate(
                    generate,
                    tok,
                    rows,
                    ids,
                    target=name,
                    modes=modes,
                    budget=cfg.budget_tokens,
                    interleave=cfg.interleave_modes,
                )
        results[name] = target_metrics(items[name], modes) | gen.as_metrics("generate")
        if name == "model":
            _jsonl(d / "samples.jsonl", samples)
            if budgets:
                outputs["budget_sweep"] = str(sweep(cfg, inputs, model, tok, rows, budgets))
        del model
    order = [*targets][1:] + ["model"]  # baselines in config order, then the model
    delta = {m: deltas(items, metric=m) for m in METRICS}
    steps = {m: step_deltas(items, order, metric=m) for m in METRICS}
    _jsonl(d / "scores.jsonl", [it for v in items.values() for it in v])
    report = {**results, "deltas": delta["accuracy"], "steps": steps["accuracy"]}
    report |= {"deltas_strict": delta["strict"], "steps_strict": steps["strict"]}
    _write(d / "eval.json", json.dumps(report, indent=2, sort_keys=True, default=str))
    _write(d / "eval.md", to_markdown(results, delta["accuracy"], steps["accuracy"], delta["strict"]))
    metrics = {k: v for k, v in results["model"].items() if "/" not in k}
    for name in targets:
        if name != "model":
            metrics.update({f"{name}.{k}": v for k, v in results[name].items() if "/" not in k})
    for m in METRICS:
        for name, sl in delta[m].items():
            metrics.update(_domain_deltas(sl, f"delta_vs_{name}.", m))
        for pair, sl in steps[m].items():  # e.g. sft.delta_vs_init.accuracy_all; the model's are above
            new, old = pair.split("-", 1)
            if new != "model":
                metrics.update(_domain_deltas(sl, f"{new}.delta_vs_{old}.", m))
    ckpt = link_checkpoint(inputs.checkpoint, inputs.checkpoint_dir)
    return StageOutputs(checkpoint=ckpt, metrics=metrics, outputs=outputs)


def sweep(cfg, inputs: StageInputs, model, tok, rows: list[dict], budgets: list[int | None]) -> Path:
    """The budget sweep of ``posttrain eval budget`` on the same held-out rows; returns its markdown path."""
    res = budget_sweep(
        model,
        tok,
        rows,
        budgets,
        max_tokens=cfg.max_new_tokens,
        grace=cfg.sweep_grace,
        batch_size=cfg.batch_size,
    )
    meta = {
        "checkpoint": inputs.checkpoint,
        "split": cfg.split,
        "budgets": budgets,
        "max_tokens": cfg.max_new_tokens,
        "grace": cfg.sweep_grace,
        "n_prompts": len(rows),
    }
    return write_report(res, inputs.stage_dir / "budget", meta)["md"]
