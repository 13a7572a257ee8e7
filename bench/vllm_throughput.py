"""Generation throughput: HF ``generate`` (in process) against a real vLLM CPU server, same prompts.

Greedy, ``--max-tokens`` new tokens per prompt, prompts rendered by the checkpoint's chat template. HF
runs batches of 1 and ``--batch``; vLLM gets 1 and ``--batch`` requests in flight. The baseline (HF)
runs in the same process and run. Writes ``bench/results/vllm_throughput.{json,md}``.

    python bench/vllm_throughput.py --checkpoint runs/r9/00_init/checkpoint --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results"
QUESTIONS = [
    "Calculate 12 + 7.",
    "Write a haiku about rain.",
    "What is the capital of France?",
    "Sort 3, 1, 2.",
    "Name three primary colours.",
    "What is 9 times 8?",
    "Give a synonym for quick.",
    "Explain what a prime number is.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(OUT / "vllm_throughput"))
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import torch

    from posttrain.inference.budget import generate_budgeted
    from posttrain.inference.generate import metered, render_prompts
    from posttrain.inference.vllm_server import VLLMServer, complete
    from posttrain.models import load_model, load_tokenizer

    torch.set_num_threads(a.threads)
    tok = load_tokenizer(a.checkpoint)
    model = load_model(a.checkpoint)
    msgs = [[{"role": "system", "content": "/think"}, {"role": "user", "content": q}] for q in QUESTIONS]
    texts = render_prompts(tok, (msgs * (a.batch // len(msgs) + 1))[: a.batch])
    rows = []

    def record(engine: str, width: int, fn) -> list:
        t0 = time.perf_counter()
        outs = fn()
        dt = time.perf_counter() - t0
        n = sum(getattr(o, "total_tokens", None) or getattr(o, "tokens", 0) for o in outs)
        rows.append(
            {
                "engine": engine,
                "width": width,
                "seconds": round(dt, 2),
                "tokens": n,
                "tokens_per_s": round(n / dt, 1),
            }
        )
        print(rows[-1], flush=True)
        return outs

    for width in (1, a.batch):
        with metered():
            record(
                "hf",
                width,
                lambda w=width: generate_budgeted(
                    model, tok, texts, budget=None, max_tokens=a.max_tokens, grace_tokens=0, batch_size=w
                ),
            )
    env_threads = {"OMP_NUM_THREADS": str(a.threads)}
    os.environ.update(env_threads)
    t0 = time.perf_counter()
    with VLLMServer(
        a.checkpoint, name="bench", max_model_len=1024, log_path=Path(a.out + ".server.log")
    ) as srv:
        startup = time.perf_counter() - t0
        complete(srv.url, "bench", texts[:1], max_tokens=4)  # warm-up
        for width in (1, a.batch):
            record(
                "vllm",
                width,
                lambda w=width: complete(srv.url, "bench", texts, max_tokens=a.max_tokens, concurrency=w),
            )
    res = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "checkpoint": a.checkpoint,
        "prompts": len(texts),
        "max_tokens": a.max_tokens,
        "threads": a.threads,
        "vllm_startup_s": round(startup, 1),
        "runs": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".json").write_text(json.dumps(res, indent=2))
    md = ["| engine | in flight | s | tokens | tokens/s |", "|---|---|---|---|---|"]
    md += [
        f"| {r['engine']} | {r['width']} | {r['seconds']} | {r['tokens']} | {r['tokens_per_s']} |"
        for r in rows
    ]
    Path(a.out + ".md").write_text("\n".join(md) + f"\n\nvLLM server start: {res['vllm_startup_s']} s\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
