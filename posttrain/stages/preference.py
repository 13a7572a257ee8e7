"""On-policy preference mining: Nano 2's DPO data recipe, resampling each prompt until it has a pair.

For each prompt ``x`` of the RL view, draw completions ``y ~ π(·|x)`` from the input checkpoint and
score each with the domain verifier, ``r(y) = posttrain.rewards.score(...)`` in [0, 1]. A sample
*passes* when ``r(y) >= τ`` (``pass_threshold``) and *fails* when ``r(y) < τ``. A prompt is
*resolved* when it has a pass ``y+`` and a fail ``y-`` with ``r(y+) - r(y-) >= min_score_gap``
(gap 0: any pass/fail pair, the plain threshold rule).

Resampling up to a cap. Round 0 draws ``k = num_samples`` completions for every prompt. Each later
round draws ``min(k, cap - drawn)`` more for the still-unresolved prompts only (one batched
generation call over all of them), until every prompt is resolved or has ``cap = max_samples``
samples. With a per-sample pass probability ``p``, a prompt stays unresolved after ``n`` samples
with probability ``p^n + (1-p)^n`` (for gap 0), so the cap turns hard prompts (small ``p``) that a
single round of k would have dropped into on-policy pairs, at the cost of ``extra_samples``
generations spent only where needed. Prompts never resampled are left as they were.

Pairs are ``(prompt, y+, y-)`` drawn at random without replacement, at most ``max_pairs_per_prompt``
per prompt, stored as raw text (TRL's standard preference format): ``prompt`` is the chat-templated
prompt, ``chosen``/``rejected`` exactly the text the policy generated. Only when ``reference_chosen``
is on (off by default) and a prompt still has no pass after the cap, the recipe's reference answer
becomes an off-policy chosen, and only if it passes its own verifier (``pairs_reference``).

Counts, nothing silently dropped: every prompt ends in exactly one of ``prompts_on_policy``,
``prompts_all_pass``, ``prompts_all_fail`` or ``prompts_no_gap``; ``on_policy_fraction`` is
on-policy pairs / pairs. ``samples.jsonl`` holds every sample, its score and its round.

Departure from Nano 2: the report mines on-policy DPO pairs for tool calling (did the calls reach
the right state); here the same loop runs over every verifiable domain (math, code, tools, chat,
safety). The checkpoint passes through unchanged (a symlink); output: ``<stage_dir>/pairs``.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import contextmanager

from datasets import Dataset

from posttrain import PosttrainError
from posttrain.inference.generate import generate_texts, metered, render_prompts
from posttrain.rewards import score
from posttrain.stages.base import StageInputs, StageOutputs, link_checkpoint, load_policy, load_view

OUTCOMES = ("on_policy", "all_pass", "all_fail", "no_gap")


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


def _resolved(scores: list[float], threshold: float, gap: float) -> bool:
    good = [s for s in scores if s >= threshold]
    bad = [s for s in scores if s < threshold]
    return bool(good and bad) and max(good) - min(bad) >= gap


def _pair_up(good, bad, n: int, gap: float, rng: random.Random) -> list[tuple]:
    """Up to ``n`` random (chosen, rejected) (score, text) pairs, without replacement, gap respected."""
    good, bad, out = list(good), list(bad), []
    rng.shuffle(good)
    for g in good:
        if len(out) == n:
            break
        fits = [j for j, b in enumerate(bad) if g[0] - b[0] >= gap]
        if fits:
            out.append((g, bad.pop(rng.choice(fits))))
    return out


def mine_on_policy(
    rows: Sequence[dict],
    sample_fn: Callable[[list[int], int], list[list[str]]],
    score_fn: Callable[[dict, str], float],
    *,
    k: int,
    cap: int,
    threshold: float,
    per_prompt: int,
    seed: int,
    references: dict[str, str] | None = None,
    min_gap: float = 0.0,
    texts: Sequence[str] | None = None,
) -> tuple[list[dict], dict, list[dict]]:
    """The mining loop (see the module docstring); returns ``(pairs, counts, records)``.

    ``sample_fn(indices, n)`` returns ``n`` completions for each row index in ``indices``;
    ``score_fn(row, text)`` is the verifier reward. ``references`` (uuid -> text) enables the
    off-policy fallback after the cap. ``texts`` are the pairs' prompts (default: ``row["prompt"]``).
    ``records`` has one entry per row: its samples, scores, rounds and outcome.
    """
    if k < 1 or cap < k:
        raise ValueError(f"need 1 <= k <= cap, got k={k}, cap={cap}")
    samples: list[list[str]] = [[] for _ in rows]
    scores: list[list[float]] = [[] for _ in rows]
    rounds: list[list[int]] = [[] for _ in rows]
    active, rnd = list(range(len(rows))), 0
    while active:
        n = min(k, cap - rnd * k)  # every active prompt has drawn rnd * k so far
        outs = sample_fn(list(active), n)
        if len(outs) != len(active) or any(len(o) != n for o in outs):
            raise ValueError(f"sample_fn must return {n} completions for each of {len(active)} prompts")
        for i, got in zip(active, outs):
            samples[i] += got
            scores[i] += [float(score_fn(rows[i], s)) for s in got]
            rounds[i] += [rnd] * n
        rnd += 1
        active = [i for i in active if len(samples[i]) < cap and not _resolved(scores[i], threshold, min_gap)]

    rng = random.Random(seed)
    pairs: list[dict] = []
    c: Counter = Counter({f"prompts_{o}": 0 for o in OUTCOMES})
    c.update(pairs_reference=0, references_failing=0, prompts_resampled=0)
    records = []
    for i, row in enumerate(rows):
        cat = row["category"]
        c[f"pairs_{cat}"] += 0
        good = [(s, t) for s, t in zip(scores[i], samples[i]) if s >= threshold]
        bad = [(s, t) for s, t in zip(scores[i], samples[i]) if s < threshold]
        c[f"pass_{cat}"] += len(good)
        c[f"samples_{cat}"] += len(samples[i])
        c["prompts_resampled"] += rounds[i][-1] > 0
        outcome = "on_policy" if good and bad else ("all_pass" if good else "all_fail")
        chosen = _pair_up(good, bad, per_prompt, min_gap, rng) if good and bad else []
        if good and bad and not chosen:
            outcome = "no_gap"
        source = "on_policy"
        ref = (references or {}).get(row.get("uuid"))
        if outcome == "all_fail" and ref is not None:
            r_score = float(score_fn(row, ref))
            chosen = _pair_up([(r_score, ref)], bad, 1, min_gap, rng) if r_score >= threshold else []
            c["pairs_reference" if chosen else "references_failing"] += 1
            source = "reference"
        c[f"prompts_{outcome}"] += 1
        prompt = texts[i] if texts is not None else row["prompt"]
        for (gs, g), (bs, b) in chosen:
            pairs.append(
                {
                    "prompt": prompt,
                    "chosen": g,
                    "rejected": b,
                    "category": cat,
                    "reasoning": row.get("reasoning"),
                    "source": source,
                    "chosen_score": gs,
                    "rejected_score": bs,
                }
            )
            c[f"pairs_{cat}"] += 1
        records.append(
            {
                "uuid": row.get("uuid"),
                "category": cat,
                "outcome": outcome,
                "pairs": len(chosen),
                "samples": samples[i],
                "scores": scores[i],
                "rounds": rounds[i],
            }
        )

    n_samples = sum(len(s) for s in samples)
    first = [s for sc, rd in zip(scores, rounds) for s, r in zip(sc, rd) if r == 0]
    counts = {
        "prompts": len(rows),
        "samples": n_samples,
        "rounds": rnd,
        "extra_samples": n_samples - len(first),
        "pass_rate": sum(s >= threshold for sc in scores for s in sc) / max(n_samples, 1),
        "pass_rate_first_round": sum(s >= threshold for s in first) / max(len(first), 1),
        "pairs": len(pairs),
        "pairs_on_policy": len(pairs) - c["pairs_reference"],
        "on_policy_fraction": (len(pairs) - c["pairs_reference"]) / len(pairs) if pairs else 0.0,
        **dict(sorted(c.items())),
    }
    return pairs, counts, records


@contextmanager
def policy_server(cfg, inputs: StageInputs):
    """A vLLM server on the policy for ``engine=vllm`` (stopped after mining), else None."""
    if cfg.engine != "vllm":
        yield None
        return
    from posttrain.inference.vllm_server import VLLMServer

    log = inputs.stage_dir / "vllm-policy.log"
    with VLLMServer(
        inputs.checkpoint, name="policy", max_model_len=2048, dtype=inputs.dtype, log_path=log
    ) as srv:
        yield srv


def sample_http(url: str, cfg, texts: list[str], n: int, *, seed: int, call: int) -> list[list[str]]:
    """``n`` samples per text from the server, one request each with its own seed (reproducible; the
    same seed on every copy of a prompt would return n identical samples)."""
    from posttrain.inference.generate import record
    from posttrain.inference.vllm_server import complete

    flat = [t for t in texts for _ in range(n)]
    seeds = [(seed * 1_000_003 + call * 10_007 + i) % 2**31 for i in range(len(flat))]
    t0 = time.perf_counter()
    out = complete(
        url, "policy", flat, max_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
        seed=seeds, concurrency=cfg.vllm_concurrency,
    )  # fmt: skip
    record(len(out), sum(c.tokens for c in out), time.perf_counter() - t0)
    return [[c.text for c in out[i * n : (i + 1) * n]] for i in range(len(texts))]


def run(cfg, inputs: StageInputs) -> StageOutputs:
    import torch

    if cfg.num_samples < 1:
        raise PosttrainError(f"stage.{inputs.name}.num_samples: must be >= 1, got {cfg.num_samples}")
    if cfg.max_samples < cfg.num_samples:
        raise PosttrainError(
            f"stage.{inputs.name}.max_samples: {cfg.max_samples} is below num_samples={cfg.num_samples}"
        )
    if cfg.engine not in ("hf", "vllm"):
        raise PosttrainError(f"stage.{inputs.name}.engine: {cfg.engine!r} is not one of hf, vllm")
    torch.manual_seed(inputs.seed)
    if cfg.engine == "vllm":
        from posttrain.models import load_tokenizer

        model, tok = None, load_tokenizer(inputs.checkpoint, trust_remote_code=inputs.trust_remote_code)
    else:
        model, tok = load_policy(inputs)
    ds = load_view(inputs, "rl", "train", categories=cfg.categories).shuffle(seed=inputs.seed)
    rows = ds.select(range(min(cfg.max_prompts, len(ds)))).to_list()
    texts = render_prompts(tok, [r["prompt"] for r in rows], [r.get("tools") for r in rows])
    calls: list[int] = []

    def sample_fn(indices: list[int], n: int) -> list[list[str]]:
        label = f"resample {len(indices)} unresolved prompts" if calls else "sample completions"
        calls.append(n)
        if server is not None:
            return sample_http(
                server.url, cfg, [texts[i] for i in indices], n, seed=inputs.seed, call=len(calls)
            )
        return generate_texts(
            model,
            tok,
            [texts[i] for i in indices],
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            num_return_sequences=n,
            batch_size=cfg.batch_size,
            progress=label,
        )

    def score_fn(row: dict, text: str) -> float:
        return score(row["category"], row["metadata"], text, row["reasoning"])

    refs = reference_completions(tok, inputs, {r["uuid"] for r in rows}) if cfg.reference_chosen else None
    with metered() as gen, policy_server(cfg, inputs) as server:
        pairs, counts, records = mine_on_policy(
            rows,
            sample_fn,
            score_fn,
            k=cfg.num_samples,
            cap=cfg.max_samples,
            threshold=cfg.pass_threshold,
            per_prompt=cfg.max_pairs_per_prompt,
            seed=inputs.seed,
            references=refs,
            min_gap=cfg.min_score_gap,
            texts=texts,
        )
    counts |= gen.as_metrics("generate")
    with open(inputs.stage_dir / "samples.jsonl", "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    with open(inputs.stage_dir / "pairs.jsonl", "w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    if pairs:
        Dataset.from_list(pairs).save_to_disk(str(inputs.stage_dir / "pairs"))
    ckpt = link_checkpoint(inputs.checkpoint, inputs.checkpoint_dir)
    return StageOutputs(checkpoint=ckpt, metrics=counts, outputs={"pairs": str(inputs.stage_dir / "pairs")})
