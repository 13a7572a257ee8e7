"""Thinking-budget benchmark on the tiny pipeline's final checkpoint: generation tokens/s, and the
tokens saved at each thinking budget for the accuracy lost.

    python bench/budget.py [--run-dir runs/demo] [--checkpoint DIR] [--data DIR]
                           [--budgets 0,4,8,16,32,none] [--max-per-category 8] [--max-tokens 96] [--grace 4]

Model and prompts. By default it reads the pipeline in ``--run-dir`` (``runs/demo``, what ``make demo``
writes): the checkpoint of the last non-eval training stage whose manifest says ``done`` (``04_grpo`` for
``nano2_tiny``), and the held-out ``test`` split of the ``rl`` view the pipeline built in ``<run-dir>/data``.
With no finished stage there it stops with an error (run ``make demo`` first); it never falls back to a
random model. ``--checkpoint`` / ``--data`` override either.

Sweep. ``posttrain.evals.sweep.budget_sweep``: the first ``--max-per-category`` held-out rows of every
category, reasoning forced ON (``/think``), greedy, one ``generate_budgeted`` pass per budget, scored by the
category verifiers; tokens saved and accuracy lost are vs the unlimited budget (``none``). Defaults are
sized for the tiny model: its traces are ~20-40 tokens and its answers ~20-30, so ``max_tokens=96`` leaves
room for an unlimited trace plus answer, budgets 0-32 span "no trace" to "about a whole trace", and the
grace window is 4 tokens (500 at full scale would exceed every tiny trace, making every budget unlimited;
4 lets a trace finish its current line without erasing the budget).

Throughput. Generated tokens per wall-second (tokens up to each row's EOS, so a batch's padding steps after
a row finished do not count), plain generation (``budget=None``) vs budgeted (``--tp-budget``) with two
calls (the answer prefilled again) and in one pass (the answer continued from the trace's cache; its text
must equal the two calls' under greedy decoding, and ``identical_to_two_calls`` records it), at batch 1
and at ``--batch-size``, on the same ``--tp-prompts`` prompts; each configuration gets an untimed warm-up
call, then ``--reps`` timed repeats (median reported, best kept too). Measured at each ``--threads`` count:
2 (the machine's cores) and 1, because when other jobs share the 2 cores two torch threads can be several
times slower than one (likely each op waits for the slower, descheduled thread); CPU seconds and load average are
recorded for the same reason. The sweep itself runs with ``--sweep-threads`` (1): it measures tokens and
accuracy, not time.

Writes ``<out-dir>/budget.json`` (machine, checkpoint + its stage fingerprint, settings, throughput,
per-budget rows for ``all`` and each domain), ``budget.md`` (tables + a one-line headline) and
``budget.png`` (accuracy and total tokens vs budget).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posttrain import PosttrainError  # noqa: E402
from posttrain.config.commands import SweepConfig  # noqa: E402
from posttrain.pipeline.rundir import RunDir  # noqa: E402

DEFAULT_RUN_DIR = "runs/demo"


def final_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    """The pipeline's final checkpoint (``RunDir.final_checkpoint``); a warning names any later training
    stage that is not done."""
    hint = f"run `make demo` (or `posttrain run pipeline=nano2_tiny run_dir={run_dir}`) first, or pass --checkpoint"
    return RunDir(run_dir).final_checkpoint(hint)


def throughput(
    model,
    tok,
    texts: list[str],
    *,
    budget,
    batch_size: int,
    threads: int,
    reps: int,
    max_tokens: int,
    grace: int,
    cached: bool = True,
) -> dict:
    import torch

    from posttrain.inference.budget import generate_budgeted

    torch.set_num_threads(threads)
    kw = {"grace_tokens": grace, "batch_size": batch_size, "cached": cached}
    warm_budget = None if budget is None else min(budget, 2)
    generate_budgeted(model, tok, texts[:batch_size], budget=warm_budget, max_tokens=4, **kw)  # warm-up
    walls, cpus, load0, stats = [], [], os.getloadavg()[0], {}
    for _ in range(reps):
        cpu0, t0 = time.process_time(), time.perf_counter()
        stats = {}
        outs = generate_budgeted(model, tok, texts, budget=budget, max_tokens=max_tokens, stats=stats, **kw)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - cpu0)
    n = sum(o.total_tokens for o in outs)  # greedy: the same tokens every repeat
    return {
        "threads": threads,
        "generation": "plain" if budget is None else f"B={budget} {'one pass' if cached else 'two calls'}",
        "rows": stats,
        "texts": [o.text for o in outs],
        "budget": budget,
        "batch_size": batch_size,
        "prompts": len(texts),
        "new_tokens": n,
        "seconds": walls,
        "cpu_seconds": cpus,
        "loadavg_1m": [load0, os.getloadavg()[0]],
        "tokens_per_s": n / statistics.median(walls),
        "tokens_per_s_best": n / min(walls),
    }


def vs_two_calls(t: dict) -> str:
    if "speedup_vs_two_calls" not in t:
        return "-"
    same = "identical text" if t["identical_to_two_calls"] else "**TEXT DIFFERS**"
    return f"{t['speedup_vs_two_calls']:.2f}x, {same}"


def headline(rows: list[dict], budget: int) -> str:
    r = next((r for r in rows if r["domain"] == "all" and r["budget"] == budget), None)
    ref = next((r for r in rows if r["domain"] == "all" and r["budget"] is None), None)
    if r is None or ref is None:
        return f"(no headline: the sweep needs budgets {budget} and none)"
    saved, lost = r["tokens_saved_frac"], r["accuracy_lost"]
    return (
        f"at B={budget}: {abs(100 * saved):.0f}% {'fewer' if saved >= 0 else 'MORE'} generated tokens "
        f"than unlimited ({r['mean_total_tokens']:.1f} vs {ref['mean_total_tokens']:.1f}) for "
        f"{abs(100 * lost):.1f} accuracy points {'lost' if lost >= 0 else 'gained'} ({100 * r['accuracy']:.1f}"
        f" vs {100 * ref['accuracy']:.1f}); well-formed {r['well_formed']:.2f} vs {ref['well_formed']:.2f}"
    )


def sha256(path: Path) -> str | None:
    f = path / "model.safetensors"
    return hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="pipeline run dir (default: %(default)s)")
    ap.add_argument("--checkpoint", default=None, help="HF checkpoint dir (default: the run's final stage)")
    ap.add_argument("--data", default=None, help="data dir with an rl/ view (default: <run-dir>/data)")
    sweep = SweepConfig()  # the sweep defaults every command shares (config/stages.py)
    ap.add_argument("--split", default=sweep.split)
    ap.add_argument("--max-per-category", type=int, default=sweep.max_per_category)
    ap.add_argument("--budgets", default=",".join("none" if b is None else str(b) for b in sweep.budgets))
    ap.add_argument("--max-tokens", type=int, default=sweep.max_tokens)
    ap.add_argument(
        "--grace", type=int, default=sweep.grace, help="grace window (tiny-scale; 500 at full scale)"
    )
    ap.add_argument("--batch-size", type=int, default=8, help="the batched throughput row")
    ap.add_argument("--sweep-batch-size", type=int, default=sweep.batch_size)
    ap.add_argument("--tp-prompts", type=int, default=8, help="prompts in each throughput row")
    ap.add_argument("--tp-budget", type=int, default=16, help="budget of the budgeted throughput rows")
    ap.add_argument("--headline-budget", type=int, default=16)
    ap.add_argument("--threads", default="2,1", help="torch thread counts for the throughput rows")
    ap.add_argument("--reps", type=int, default=2, help="timed repeats per throughput row")
    ap.add_argument("--sweep-threads", type=int, default=1)
    ap.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except PosttrainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    ckpt = {"path": args.checkpoint, "stage": None} if args.checkpoint else final_checkpoint(args.run_dir)
    if ckpt.get("unfinished_later_stages"):
        print(
            f"warning: using {ckpt['stage_dir']}; later stages not done: {ckpt['unfinished_later_stages']}",
            file=sys.stderr,
        )
    data = args.data or str(Path(args.run_dir) / "data")

    import torch
    import transformers

    from posttrain.evals.rows import cap_rows, load_rows
    from posttrain.evals.sweep import (
        budget_sweep,
        check_budgets,
        force_think,
        in_process,
        parse_budgets,
        plot,
        to_markdown,
    )
    from posttrain.inference.generate import render_prompts
    from posttrain.models import load_model, load_tokenizer

    budgets = parse_budgets(args.budgets)
    check_budgets(budgets, args.max_tokens, args.grace)
    torch.manual_seed(0)
    tok = load_tokenizer(ckpt["path"], what="checkpoint")
    model = load_model(ckpt["path"], what="checkpoint")
    rows = load_rows(data, args.split, args.max_per_category)
    counts = dict(
        sorted({c: sum(r["category"] == c for r in rows) for c in {r["category"] for r in rows}}.items())
    )
    print(f"checkpoint {ckpt['path']} (stage {ckpt['stage']}); {len(rows)} prompts {counts}", file=sys.stderr)

    tp_rows = cap_rows(rows, max_prompts=args.tp_prompts)  # round-robin over the categories
    texts = render_prompts(
        tok, [force_think(r["prompt"]) for r in tp_rows], [r.get("tools") for r in tp_rows]
    )
    tp = []
    load_start = os.getloadavg()
    for th in (int(x) for x in str(args.threads).split(",")):
        for bs in (1, args.batch_size):
            for b, cached in ((None, True), (args.tp_budget, False), (args.tp_budget, True)):
                t = throughput(
                    model,
                    tok,
                    texts,
                    budget=b,
                    batch_size=bs,
                    threads=th,
                    reps=args.reps,
                    max_tokens=args.max_tokens,
                    grace=args.grace,
                    cached=cached,
                )
                if cached and b is not None:  # greedy: the one pass must give the two calls' text
                    t["identical_to_two_calls"] = t["texts"] == tp[-1]["texts"]
                    t["speedup_vs_two_calls"] = t["tokens_per_s"] / tp[-1]["tokens_per_s"]
                tp.append(t)
                print(
                    f"threads {th} {t['generation']} batch {bs}: {t['tokens_per_s']:.1f} tok/s",
                    file=sys.stderr,
                )
    torch.set_num_threads(args.sweep_threads)
    t0, cpu0 = time.perf_counter(), time.process_time()
    engine = in_process(
        model, tok, max_tokens=args.max_tokens, grace=args.grace, batch_size=args.sweep_batch_size
    )
    res = budget_sweep(engine, tok, rows, budgets)
    sweep_s, sweep_cpu = time.perf_counter() - t0, time.process_time() - cpu0

    data_manifest = Path(data) / "manifest.json"
    meta = {
        "command": " ".join(["python", "bench/budget.py", *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
        "run_dir": args.run_dir,
        "run_dir_default": DEFAULT_RUN_DIR,
        "checkpoint": {**ckpt, "model_sha256": sha256(Path(ckpt["path"]))},
        "data": data,
        "data_fingerprint": json.loads(data_manifest.read_text()).get("fingerprint")
        if data_manifest.exists()
        else None,
        "settings": {
            "split": args.split,
            "max_per_category": args.max_per_category,
            "prompts": len(rows),
            "prompts_per_category": counts,
            "budgets": budgets,
            "max_tokens": args.max_tokens,
            "grace": args.grace,
            "sweep_batch_size": args.sweep_batch_size,
            "decoding": "greedy",
            "reasoning": "on (/think forced)",
            "throughput_prompts": len(texts),
            "throughput_budget": args.tp_budget,
            "throughput_reps": args.reps,
            "sweep_threads": args.sweep_threads,
        },
        "sweep_seconds": sweep_s,
        "sweep_cpu_seconds": sweep_cpu,
    }
    head = headline(res, args.headline_budget)
    meta["headline"] = head
    meta["wall_seconds"] = time.perf_counter() - t_start
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "budget.json").write_text(json.dumps({**meta, "throughput": tp, "rows": res}, indent=2) + "\n")

    lines = [
        "# Thinking-budget benchmark",
        "",
        f"**{head}**",
        "",
        f"Checkpoint `{ckpt.get('manifest_checkpoint') or ckpt['path']}` (stage {ckpt['stage']}, fingerprint "
        f"{(ckpt.get('fingerprint') or '-')[:10]}); data `{data}` split {args.split} (fingerprint "
        f"{meta['data_fingerprint']}), {len(rows)} prompts {counts}; reasoning forced on, greedy; "
        f"max_tokens={args.max_tokens}, grace={args.grace}; {meta['machine']['cpus']} CPUs (load average "
        f"{load_start[0]:.1f} at start, {meta['machine']['loadavg_end'][0]:.1f} at end); sweep "
        f"{sweep_s:.0f} s on {args.sweep_threads} thread(s), total {meta['wall_seconds']:.0f} s. Budgets are "
        f"soft: a trace still open at B may run up to {args.grace} grace tokens more to end its line "
        "(`respected_budget`: share that stayed within B); tokens are all generated tokens, trace + answer.",
        "",
        "## Generation throughput",
        "",
        f"Median of {args.reps} timed runs after a warm-up; CPU/wall below 1 per thread means waiting for a core.",
        "",
        "| torch threads | generation | batch | prompts | generated tokens | median wall s | CPU s / wall s "
        "| tokens/s (median) | tokens/s (best) | rows one pass / two calls | vs two calls |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {t['threads']} | {t['generation']} | {t['batch_size']} | {t['prompts']} | {t['new_tokens']} | "
            f"{statistics.median(t['seconds']):.1f} | {sum(t['cpu_seconds']) / sum(t['seconds']):.2f} | "
            f"{t['tokens_per_s']:.1f} | {t['tokens_per_s_best']:.1f} | "
            f"{t['rows'].get('one_pass', '-')} / {t['rows'].get('two_call', '-')} | {vs_two_calls(t)} |"
            for t in tp
        ),
        "",
        "## Per budget, all domains",
        "",
        to_markdown([r for r in res if r["domain"] == "all"]).rstrip(),
        "",
        "## Per budget and domain",
        "",
        to_markdown([r for r in res if r["domain"] != "all"]).rstrip(),
        "",
    ]
    (out / "budget.md").write_text("\n".join(lines))
    plot(res, out / "budget.png")
    print("\n".join(lines))
    print(f"wrote {out / 'budget.json'}, {out / 'budget.md'}, {out / 'budget.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
