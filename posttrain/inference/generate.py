"""Batched chat generation over any HF causal LM with a posttrain-style chat template.

Thinking-budget control in process is ``posttrain.inference.budget.generate_budgeted``.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from posttrain.reasoning import flag, strip_flags


@dataclass(eq=False)  # removed from _METERS by identity
class GenStats:
    """Decode throughput of the ``generate`` calls made inside ``metered()``: ``tokens`` counts the
    generated tokens of every row up to and including its first stop token (EOS, or the padding
    ``generate`` writes after a row has finished), ``seconds`` the wall time of the calls, prefill
    included."""

    calls: int = 0
    rows: int = 0
    tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_tokens": self.tokens,
            f"{prefix}_seconds": round(self.seconds, 3),
            f"{prefix}_tokens_per_s": round(self.tokens_per_s, 2),
        }


_METERS: list[GenStats] = []


@contextmanager
def metered():
    """Collect ``GenStats`` over every posttrain ``generate`` call in the block (nesting allowed)."""
    stats = GenStats()
    _METERS.append(stats)
    try:
        yield stats
    finally:
        _METERS.remove(stats)


def generated_tokens(new: torch.Tensor, stop_ids: set[int]) -> int:
    """Tokens per row of ``new`` (generated ids) up to and including the first of ``stop_ids``."""
    stop = sorted(i for i in stop_ids if i is not None)
    if not stop or not new.numel():
        return new.numel()
    done = torch.isin(new, torch.tensor(stop, dtype=new.dtype, device=new.device))
    first = done.int().argmax(dim=1) + 1
    return int(torch.where(done.any(dim=1), first, torch.full_like(first, new.shape[1])).sum())


def timed_generate(model, stop_ids: set[int], **kwargs) -> torch.Tensor:
    """``model.generate(**kwargs)``, recorded into the active ``metered()`` blocks; ``stop_ids`` are
    the tokens that end a row (EOS and the pad id ``generate`` fills finished rows with)."""
    t0 = time.perf_counter()
    out = model.generate(**kwargs)
    if _METERS:
        new = out[:, kwargs["input_ids"].shape[1] :]
        record(len(new), generated_tokens(new, stop_ids), time.perf_counter() - t0)
    return out


def record(rows: int, tokens: int, seconds: float) -> None:
    """Add one generation call to the active ``metered()`` blocks (any engine)."""
    for m in _METERS:
        m.calls, m.rows, m.tokens, m.seconds = (
            m.calls + 1,
            m.rows + rows,
            m.tokens + tokens,
            m.seconds + seconds,
        )


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

    Greedy when ``temperature == 0`` (one continuation per text, repeated: ``generate`` refuses greedy
    with ``num_return_sequences > 1``). Continuations are decoded with ``skip_special_tokens=True``
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
            per = num_return_sequences if sample else 1
            out = timed_generate(
                model,
                {tok.eos_token_id, tok.pad_token_id},
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_p=top_p if sample else None,
                num_return_sequences=per,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            decoded = tok.batch_decode(new, skip_special_tokens=True)
            for i in range(len(chunk)):
                got = decoded[i * per : (i + 1) * per]
                results.append(got if sample else got * num_return_sequences)
    finally:
        tok.padding_side = old_side
    return results
