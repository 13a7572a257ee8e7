"""Batched chat generation over any HF causal LM with a posttrain-style chat template.

Thinking-budget control in process is ``posttrain.inference.budget.generate_budgeted``.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from posttrain.reasoning import flag, strip_flags


def n_tokens(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


def as_messages(prompt: Any) -> list[dict[str, Any]]:
    return json.loads(prompt) if isinstance(prompt, str) else list(prompt)


def with_reasoning_mode(prompt: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Strip reasoning flags from every message and put ``/think`` (mode ``on``) or ``/no_think``
    (mode ``off``) into the system turn, adding one if the prompt has none."""
    mark = flag(mode)
    msgs = [{**m, "content": strip_flags(m.get("content") or "").strip()} for m in as_messages(prompt)]
    if msgs and msgs[0]["role"] == "system":
        msgs[0]["content"] = (msgs[0]["content"] + " " + mark).strip()
    else:
        msgs.insert(0, {"role": "system", "content": mark})
    return msgs


def render_prompts(tok, prompts: list[Any], tools: list[Any] | None = None) -> list[str]:
    """Chat-template each prompt (a message list) with the generation prompt appended."""
    out = []
    for i, p in enumerate(prompts):
        t = tools[i] if tools else None
        if isinstance(t, str):
            t = json.loads(t) if t else None
        out.append(
            tok.apply_chat_template(
                as_messages(p), tools=t or None, add_generation_prompt=True, tokenize=False
            )
        )
    return out


def batch_starts(n: int, batch_size: int, progress: str | None = None):
    """Start offsets of the batches over ``n`` items, with a progress bar when ``progress`` names the work."""
    from tqdm.auto import tqdm

    starts = range(0, n, batch_size)
    return tqdm(starts, desc=progress, disable=not progress or len(starts) < 2, leave=False, unit="batch")


@torch.no_grad()
def generate_texts(
    model,
    tok,
    texts: list[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    num_return_sequences: int = 1,
    batch_size: int = 16,
    progress: str | None = None,
) -> list[list[str]]:
    """Continue each raw text; returns ``num_return_sequences`` decoded continuations per text.

    Greedy when ``temperature == 0``. Continuations are decoded with ``skip_special_tokens=True``
    (``<think>``/``</think>`` and tool markers are non-special and survive). ``progress`` (a label)
    shows a progress bar over batches.
    """
    model.eval()
    old_side = tok.padding_side
    tok.padding_side = "left"
    results: list[list[str]] = []
    try:
        for start in batch_starts(len(texts), batch_size, progress):
            chunk = texts[start : start + batch_size]
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            sample = temperature > 0
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_p=top_p if sample else None,
                num_return_sequences=num_return_sequences,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            decoded = tok.batch_decode(new, skip_special_tokens=True)
            for i in range(len(chunk)):
                results.append(decoded[i * num_return_sequences : (i + 1) * num_return_sequences])
    finally:
        tok.padding_side = old_side
    return results
