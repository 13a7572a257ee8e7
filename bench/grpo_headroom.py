"""Is there anything for GRPO to learn? Greedy vs sampled accuracy and pass@k of a checkpoint, per mode.

    python bench/grpo_headroom.py [--checkpoint runs/real/03_dpo/checkpoint] [--run-dir runs/real]
                                  [--prompts 40] [--k 8] [--temperatures 0.7 1.0] [--split train]
                                  [--baseline runs/real/03_dpo/checkpoint]

On ``--prompts`` math prompts of the run's RL ``--split`` (shuffled, seed 1), each rendered with
``/think`` and with ``/no_think``: greedy accuracy, sampled accuracy (mean over k samples, lenient and
strict), pass@k (a prompt counts when any sample passes) and the share of prompts whose k samples all
score the same (a GRPO group with no gradient). GRPO can lift greedy accuracy only where pass@k exceeds
it, and learns from samples, so sampled accuracy far below greedy means the training reward measures
text a greedy eval never produces. With ``--baseline`` both checkpoints are probed on the same prompts
and each metric gets a paired bootstrap 95 % interval (checkpoint minus baseline): run on the held-out
split with the GRPO output against its DPO input, it says whether GRPO moved sampled accuracy where
greedy accuracy did not. Writes ``bench/results/grpo_headroom.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def probe(model, tok, rows, mode: str, k: int, temperatures: list[float], max_new_tokens: int) -> dict:
    from posttrain.inference.generate import generate_texts, render_prompts, with_reasoning_mode
    from posttrain.rewards import format_reward, score

    def strict(r, text):  # what GRPO's correctness_in_format pays
        return score("math", r["metadata"], text, mode) * format_reward(text, mode)

    texts = render_prompts(tok, [with_reasoning_mode(r["prompt"], mode) for r in rows])
    greedy = generate_texts(model, tok, texts, max_new_tokens=max_new_tokens, batch_size=64)
    n = len(rows)
    per = {  # per-prompt scores, for paired intervals against a baseline
        "greedy": [score("math", r["metadata"], g[0], mode) for r, g in zip(rows, greedy)],
        "greedy_strict": [strict(r, g[0]) for r, g in zip(rows, greedy)],
    }
    out = {key: sum(v) / n for key, v in per.items()}
    for t in temperatures:
        samples = generate_texts(
            model,
            tok,
            texts,
            max_new_tokens=max_new_tokens,
            temperature=t,
            num_return_sequences=k,
            batch_size=16,
        )
        scores = [[strict(r, s) for s in group] for r, group in zip(rows, samples)]
        lenient = [[score("math", r["metadata"], s, mode) for s in group] for r, group in zip(rows, samples)]
        per[f"T{t:g}_sampled"] = [sum(v) / k for v in lenient]
        per[f"T{t:g}_sampled_strict"] = [sum(v) / k for v in scores]
        out[f"T{t:g}"] = {
            "sampled": sum(map(sum, lenient)) / (n * k),
            "sampled_strict": sum(map(sum, scores)) / (n * k),
            f"pass@{k}_strict": sum(any(s) for s in scores) / n,
            "zero_variance": sum(len(set(s)) == 1 for s in scores) / n,
            "all_pass": sum(all(s) for s in scores) / n,
            "all_fail": sum(not any(s) for s in scores) / n,
            "greedy_fails_some_sample_passes": sum(
                any(s) and not strict(r, g[0]) for r, g, s in zip(rows, greedy, scores)
            )
            / n,
        }
    out["per_prompt"] = per
    return out


def paired(model: dict, base: dict) -> dict:
    """Per mode and metric: checkpoint minus baseline, mean and paired bootstrap 95 % interval. Under
    ``both`` each prompt's score is the mean of its modes, so the bootstrap resamples prompts (the two
    renderings of one prompt are not independent items)."""
    from posttrain.evals.stats import paired_diff

    def mean_modes(res: dict, m: str) -> list[float]:
        per = [r["per_prompt"][m] for r in res.values()]
        return [sum(v) / len(v) for v in zip(*per)]

    out = {}
    for mode, res in model.items():
        a, b = res["per_prompt"], base[mode]["per_prompt"]
        out[mode] = {m: [round(x, 4) for x in paired_diff(a[m], b[m])] for m in a}
    metrics = next(iter(model.values()))["per_prompt"]
    out["both"] = {
        m: [round(x, 4) for x in paired_diff(mean_modes(model, m), mean_modes(base, m))] for m in metrics
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/real")
    ap.add_argument("--checkpoint", default=None, help="default: <run-dir>/03_dpo/checkpoint")
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 1.0])
    ap.add_argument("--max-new-tokens", type=int, default=64, help="GRPO's max_completion_length")
    ap.add_argument("--split", default="train", help="RL view split: train, or test (held out)")
    ap.add_argument("--baseline", default=None, help="a second checkpoint probed on the same prompts")
    ap.add_argument("--out", default="bench/results/grpo_headroom.json")
    args = ap.parse_args()
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ckpt = args.checkpoint or f"{args.run_dir}/03_dpo/checkpoint"
    rl = load_from_disk(f"{args.run_dir}/data/rl")[args.split]
    math = rl.filter(lambda c: c == "math", input_columns="category").shuffle(seed=1)
    rows = list(math.select(range(min(args.prompts, len(math)))))

    def run(path: str) -> dict:
        torch.manual_seed(0)  # the same sampling stream for both checkpoints
        tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
        modes = ("on", "off")
        return {m: probe(model, tok, rows, m, args.k, args.temperatures, args.max_new_tokens) for m in modes}

    t0 = time.time()
    res = run(ckpt)
    out = {
        "checkpoint": ckpt,
        "split": args.split,
        "prompts": len(rows),
        "k": args.k,
        "max_new_tokens": args.max_new_tokens,
        "modes": res,
    }
    if args.baseline:
        base = run(args.baseline)
        out.update(baseline=args.baseline, baseline_modes=base, delta_vs_baseline=paired(res, base))
    out["wall_s"] = round(time.time() - t0, 1)
    path = ROOT / args.out
    path.write_text(json.dumps(out, indent=2) + "\n")
    brief = {k: v for k, v in out.items() if k not in ("modes", "baseline_modes")}
    print(
        json.dumps(
            brief | {"modes": {m: {k: v for k, v in r.items() if k != "per_prompt"} for m, r in res.items()}},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
