"""On-policy preference mining (Nano 2's DPO data for tool calling, applied to every verifiable domain).

For each prompt of the RL view, sample ``k`` completions from the input checkpoint, score each with
the domain verifier (``posttrain.rewards.score``), and pair a passing completion (chosen) with a
failing one (rejected). Prompts where all or none of the samples pass give no on-policy pair; they
are counted, never silently dropped. Output: a TRL conversational preference dataset at
``<stage_dir>/pairs`` (+ ``pairs.jsonl``); the checkpoint passes through unchanged (a symlink).
"""

from __future__ import annotations

import json
import random
from collections import Counter

from datasets import Dataset

from posttrain.inference.generate import generate_texts, render_prompts
from posttrain.rewards import score
from posttrain.stages.base import StageInputs, StageOutputs, link_checkpoint, load_policy, load_view


def reference_completions(tok, inputs: StageInputs, uuids: set[str]) -> dict[str, str]:
    """uuid -> the reference answer as the model would generate it after the generation prompt."""
    pref = load_view(inputs, "preference", "train").filter(lambda u: u in uuids, input_columns="uuid")
    out = {}
    for r in pref:
        tools = json.loads(r["tools"]) if r.get("tools") else None
        head = tok.apply_chat_template(r["prompt"], tools=tools, add_generation_prompt=True, tokenize=False)
        full = tok.apply_chat_template(r["prompt"] + r["chosen"], tools=tools, tokenize=False)
        if full.startswith(head):
            out[r["uuid"]] = full[len(head) :].rstrip("\n").removesuffix(tok.eos_token)
    return out


def mine_pairs(
    rows: list[dict], texts: list[str], samples: list[list[str]], scores: list[list[float]],
    *, threshold: float, per_prompt: int, seed: int, references: dict[str, str] | None = None,
):  # fmt: skip
    """Pair passing (chosen) with failing (rejected) samples; returns (pairs, counts).

    Pairs are stored as raw text (TRL's standard, non-conversational preference format): ``prompt``
    is the chat-templated prompt and ``chosen``/``rejected`` are exactly what the model generated,
    so DPO scores the very tokens the policy produced (TRL appends EOS). When no sample passes and
    ``references`` has the prompt's reference answer, it becomes an off-policy chosen (counted as
    ``pairs_reference``).
    """
    rng = random.Random(seed)
    pairs, counts = [], Counter()
    for row, text, outs, sc in zip(rows, texts, samples, scores):
        good = [o for o, s in zip(outs, sc) if s >= threshold]
        bad = [o for o, s in zip(outs, sc) if s < threshold]
        counts[f"pass_{row['category']}"] += len(good)
        counts[f"samples_{row['category']}"] += len(outs)
        if not good and bad and references and row.get("uuid") in references:
            good = [references[row["uuid"]]]
            counts["pairs_reference"] += 1
        if not good or not bad:
            counts["prompts_all_pass" if good else "prompts_all_fail"] += 1
            continue
        for _ in range(min(per_prompt, len(good), len(bad))):
            g, b = good.pop(rng.randrange(len(good))), bad.pop(rng.randrange(len(bad)))
            pairs.append(
                {
                    "prompt": text,
                    "chosen": g,
                    "rejected": b,
                    "category": row["category"],
                    "reasoning": row["reasoning"],
                }
            )
            counts[f"pairs_{row['category']}"] += 1
    return pairs, counts


def run(cfg, inputs: StageInputs) -> StageOutputs:
    import torch

    torch.manual_seed(inputs.seed)
    model, tok = load_policy(inputs)
    ds = load_view(inputs, "rl", "train", categories=cfg.categories).shuffle(seed=inputs.seed)
    rows = ds.select(range(min(cfg.max_prompts, len(ds)))).to_list()
    texts = render_prompts(tok, [r["prompt"] for r in rows], [r.get("tools") for r in rows])
    samples = generate_texts(
        model, tok, texts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
        top_p=cfg.top_p, num_return_sequences=cfg.num_samples, batch_size=cfg.batch_size,
        progress="sample completions",
    )  # fmt: skip
    scores = [
        [score(r["category"], r["metadata"], s, r["reasoning"]) for s in outs]
        for r, outs in zip(rows, samples)
    ]
    refs = reference_completions(tok, inputs, {r["uuid"] for r in rows}) if cfg.reference_chosen else None
    pairs, counts = mine_pairs(
        rows, texts, samples, scores, threshold=cfg.pass_threshold, per_prompt=cfg.max_pairs_per_prompt,
        seed=inputs.seed, references=refs,
    )  # fmt: skip
    with open(inputs.stage_dir / "samples.jsonl", "w") as f:
        for r, outs, sc in zip(rows, samples, scores):
            f.write(
                json.dumps({"uuid": r.get("uuid"), "category": r["category"], "samples": outs, "scores": sc})
                + "\n"
            )
    with open(inputs.stage_dir / "pairs.jsonl", "w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    if pairs:
        Dataset.from_list(pairs).save_to_disk(str(inputs.stage_dir / "pairs"))
    n = sum(len(s) for s in samples)
    metrics = {
        "prompts": len(rows),
        "samples": n,
        "pass_rate": sum(s >= cfg.pass_threshold for sc in scores for s in sc) / max(n, 1),
        "pairs": len(pairs),
        **dict(sorted(counts.items())),
    }
    ckpt = link_checkpoint(inputs.checkpoint, inputs.checkpoint_dir)
    return StageOutputs(checkpoint=ckpt, metrics=metrics, outputs={"pairs": str(inputs.stage_dir / "pairs")})
