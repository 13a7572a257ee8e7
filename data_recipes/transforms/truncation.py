"""Truncated-thinking samples (Nano 2: ~5 % of SFT samples, budgets of 1-2k tokens at full scale).

For a selected ON sample, budget ``B`` is drawn uniformly from ``[lo, min(hi, n - 1)]`` where ``n``
is the token count of its longest reasoning trace (in the recipe tokenizer), so the cut always
removes something. The cut falls at the last newline or sentence end (``.``, ``!`` or ``?`` followed
by whitespace) within the first ``B`` tokens, or at exactly ``B`` tokens if there is none (never
inside a character: a multi-byte character that straddles ``B`` is left out). The
chat template closes the cut trace with ``\\n</think>``; the turn's answer (content and tool calls)
is kept byte for byte. Metadata records ``truncated_at`` (character offset of the cut in the
original trace), ``truncated_tokens``, ``thinking_budget`` and ``reasoning_tokens``.
Departure: the report truncates only long traces; here any trace longer than ``lo`` tokens
qualifies, since the tiny recipe's traces are 10-60 tokens.
"""

from __future__ import annotations

import random
import re

from data_recipes import tokens

_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def count_tokens(tokenizer, text: str) -> int:
    """Tokens in ``text`` without special tokens."""
    return tokens.count_tokens(tokenizer, [text])[0]


def cut_reasoning(text: str, budget: int, tokenizer) -> str | None:
    """``text`` cut to at most ``budget`` tokens at a line or sentence end; ``None`` if it already fits."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= budget:
        return None
    limit = enc["offset_mapping"][budget - 1][1]
    prefix = text[:limit]
    ends = [prefix.rfind("\n")] + [
        m.end() for m in _SENTENCE_END.finditer(text, 0, limit + 1) if m.end() <= limit
    ]
    cut = text[: max(ends)].rstrip() if max(ends) > 0 else ""
    cut = cut or prefix.rstrip()  # no (non-empty) boundary: exactly at the budget
    while cut and count_tokens(tokenizer, cut) > budget:  # BPE merges can differ at the new end
        cut = cut[:-1].rstrip()
    return cut or None


def _longest(sample: dict, tokenizer) -> tuple[int, int]:
    """(message index, token count) of the longest reasoning trace."""
    best = (-1, 0)
    for i, m in enumerate(sample["messages"]):
        if m["role"] == "assistant" and m["reasoning_content"]:
            n = count_tokens(tokenizer, m["reasoning_content"])
            best = max(best, (i, n), key=lambda t: t[1])
    return best


def truncate_sample(sample: dict, budget: int, tokenizer) -> dict | None:
    """A copy of ``sample`` with its longest trace cut to ``budget`` tokens (``None`` if nothing to cut)."""
    i, n = _longest(sample, tokenizer)
    if i < 0:
        return None
    text = sample["messages"][i]["reasoning_content"]
    cut = cut_reasoning(text, budget, tokenizer)
    if cut is None:
        return None
    messages = [dict(m) for m in sample["messages"]]
    messages[i]["reasoning_content"] = cut
    meta = {
        **sample["metadata"],
        "truncated_at": len(cut),
        "truncated_tokens": count_tokens(tokenizer, cut),
        "thinking_budget": budget,
        "reasoning_tokens": n,
    }
    return {**sample, "messages": messages, "metadata": meta}


def truncate_share(
    samples: list[dict], fraction: float, budget: tuple[int, int], seed: int, tokenizer
) -> int:
    """Truncate ``round(fraction * #ON)`` seeded ON samples in place (those long enough); return the count."""
    lo, hi = budget
    on = [j for j, s in enumerate(samples) if s["reasoning"] == "on"]
    want = round(fraction * len(on))
    rng = random.Random(f"{seed}:truncate")
    done = 0
    for j in rng.sample(on, len(on)):
        if done >= want:
            break
        _, n = _longest(samples[j], tokenizer)
        if n <= lo:
            continue
        cut = truncate_sample(samples[j], rng.randint(lo, min(hi, n - 1)), tokenizer)
        if cut is not None:
            samples[j], done = cut, done + 1
    return done
