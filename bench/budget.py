"""Thinking-budget benchmark: generation throughput, and tokens saved vs accuracy lost per budget.

    python bench/budget.py [--checkpoint DIR] [--data DIR] [--budgets 0,8,16,none] [--n 8]

Without ``--checkpoint`` it uses the tiny *random* NemotronH (accuracy is then ~0 everywhere and only
the token / throughput columns mean something). Without ``--data`` the prompts are synthetic sums
("What is 17 + 25?") scored by the math verifier; with ``--data`` they are the ``<data>/rl`` split.
Writes ``bench/results/budget.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from posttrain.inference.generate import generate_texts  # noqa: E402
from posttrain.inference.sweep import budget_sweep, force_think, load_rows, parse_budgets  # noqa: E402


def trace(a: int, b: int) -> str:
    """A column-addition reasoning trace, one line per digit (so the newline grace window has lines to end)."""
    lines, carry = [], 0
    for i, (x, y) in enumerate(zip(reversed(f"{a:02d}"), reversed(f"{b:02d}"))):
        s = int(x) + int(y) + carry
        lines.append(f"digit {i}: {x} + {y} + {carry} = {s}, write {s % 10}, carry {s // 10}")
        carry = s // 10
    return "\n".join([f"We add {a} and {b} column by column.", *lines, f"So the sum is {a + b}."])


def train_tiny(model, tok, steps: int, seed: int = 1) -> None:
    """A few AdamW steps on synthetic sums with traces (full sequence loss): enough to learn the format."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        texts = []
        for _ in range(8):
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            msgs = [{"role": "user", "content": f"What is {a} + {b}? Put the answer in \\boxed{{}}."},
                    {"role": "assistant", "content": f"\\boxed{{{a + b}}}", "reasoning_content": trace(a, b)}]  # fmt: skip
            texts.append(tok.apply_chat_template(msgs, tokenize=False))
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step % 10 == 0 or step == steps - 1:
            print(f"train step {step}: loss {loss.item():.3f}", file=sys.stderr, flush=True)
    model.eval()


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        q = f"What is {a} + {b}? Put the answer in \\boxed{{}}."
        rows.append(
            {
                "prompt": [{"role": "user", "content": q}],
                "category": "math",
                "metadata": json.dumps({"answer": str(a + b)}),
            }
        )
    return rows


def throughput(model, tok, texts: list[str], max_new: int, batch_size: int) -> dict:
    generate_texts(model, tok, texts[:1], max_new_tokens=2)  # warm-up
    t0 = time.perf_counter()
    generate_texts(model, tok, texts, max_new_tokens=max_new, batch_size=batch_size)
    dt = time.perf_counter() - t0
    return {"batch_size": batch_size, "prompts": len(texts), "new_tokens": max_new * len(texts), "seconds": dt,
            "tokens_per_s": max_new * len(texts) / dt}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None, help="HF checkpoint dir (default: tiny random model)")
    ap.add_argument("--data", default=None, help="data dir with an rl/ view (default: synthetic sums)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=8, help="prompts (per category with --data)")
    ap.add_argument("--budgets", default="0,4,8,16,none")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument(
        "--grace", type=int, default=4, help="grace window (tiny-scale default; 500 at full scale)"
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--train-steps", type=int, default=0, help="first train the tiny model on synthetic sums")
    ap.add_argument("--save", default=None, help="save the (trained) tiny model here as an HF checkpoint")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "budget.json"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    if args.checkpoint:
        from posttrain.models import load_model, load_tokenizer

        model, tok, name = load_model(args.checkpoint), load_tokenizer(args.checkpoint), args.checkpoint
    else:
        from posttrain.config.schema import ModelConfig
        from posttrain.models import build_tiny_model

        (model, tok), name = build_tiny_model(ModelConfig()), "tiny-random (no checkpoint given)"
        if args.train_steps:
            t0 = time.perf_counter()
            train_tiny(model, tok, args.train_steps)
            name = f"tiny, {args.train_steps} steps on synthetic sums ({time.perf_counter() - t0:.0f} s)"
    if args.save:
        from posttrain.models import save_checkpoint

        save_checkpoint(model, tok, args.save)
    rows = load_rows(args.data, args.split, args.n) if args.data else synthetic_rows(args.n)
    budgets = parse_budgets(args.budgets)
    texts = [
        tok.apply_chat_template(force_think(r["prompt"]), add_generation_prompt=True, tokenize=False)
        for r in rows
    ]
    tp = [
        throughput(model, tok, texts[:1], args.max_tokens, 1),
        throughput(model, tok, texts, args.max_tokens, args.batch_size),
    ]
    per = []
    for b in budgets:
        t0 = time.perf_counter()
        res = budget_sweep(
            model, tok, rows, [b], max_tokens=args.max_tokens, grace=args.grace, batch_size=args.batch_size
        )
        dt = time.perf_counter() - t0
        row = next(r for r in res if r["domain"] == "all")
        per.append({**row, "seconds": dt, "tokens_per_s": row["mean_total_tokens"] * row["n"] / dt})
    ref = next((r for r in per if r["budget"] is None), None)
    for r in per:
        if ref is not None:
            r["tokens_saved"] = ref["mean_total_tokens"] - r["mean_total_tokens"]
            r["tokens_saved_frac"] = (
                r["tokens_saved"] / ref["mean_total_tokens"] if ref["mean_total_tokens"] else 0.0
            )
            r["accuracy_lost"] = ref["accuracy"] - r["accuracy"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"model": name, "data": args.data or "synthetic sums", "prompts": len(rows), "max_tokens": args.max_tokens,
            "grace": args.grace, "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
            "cpus": os.cpu_count()}  # fmt: skip
    out.write_text(json.dumps({**meta, "throughput": tp, "budgets": per}, indent=2) + "\n")
    print(f"model: {name}; {len(rows)} prompts; max_tokens={args.max_tokens} grace={args.grace}\n")
    print("| generation | batch | tokens/s |\n|---|---|---|")
    for t in tp:
        print(f"| plain greedy | {t['batch_size']} | {t['tokens_per_s']:.1f} |")
    print(
        "\n| budget | accuracy | accuracy lost | think tok | total tok | saved tok | saved % | well-formed | s | tok/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in per:
        saved = "-" if r["tokens_saved"] is None else f"{r['tokens_saved']:.1f}"
        frac = "-" if r["tokens_saved_frac"] is None else f"{100 * r['tokens_saved_frac']:.0f}"
        lost = "-" if r["accuracy_lost"] is None else f"{r['accuracy_lost']:.3f}"
        print(f"| {'none' if r['budget'] is None else r['budget']} | {r['accuracy']:.3f} | {lost} | "
              f"{r['mean_thinking_tokens']:.1f} | {r['mean_total_tokens']:.1f} | {saved} | {frac} | "
              f"{r['well_formed']:.2f} | {r['seconds']:.1f} | {r['tokens_per_s']:.1f} |")  # fmt: skip
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
