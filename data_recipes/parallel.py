"""Generation and tokenisation, in parallel through ``datasets.map(num_proc=...)``.

Work is split by sample index, and sample ``i`` depends only on the seed and ``i``, so the output
is the same for any ``num_proc``. With ``num_proc == 1`` the work runs in-process (with a tqdm bar).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

from tqdm.auto import tqdm

from data_recipes.domains import get

_CHUNK = 512


def _gen_batch(batch: dict, cfg, domain: str) -> dict:
    rows = get(domain).generate(cfg, list(batch["i"]))
    return {"row": [json.dumps(r, ensure_ascii=False) for r in rows]}


def render(tokenizer, sample: dict) -> str:
    """The full training text of a sample as the chat template renders it."""
    tools = sample["metadata"].get("tools") or None
    return tokenizer.apply_chat_template(sample["messages"], tools=tools, tokenize=False)


def _measure_batch(batch: dict, tokenizer) -> dict:
    samples = [json.loads(r) for r in batch["row"]]
    texts = [render(tokenizer, s) for s in samples]
    traces = [
        "\n".join(m["reasoning_content"] or "" for m in s["messages"] if m["role"] == "assistant")
        for s in samples
    ]
    enc = tokenizer(texts + traces, add_special_tokens=False)["input_ids"]
    n = len(samples)
    return {"n_tokens": [len(x) for x in enc[:n]], "reasoning_tokens": [len(x) for x in enc[n:]]}


def _map(rows: dict, fn, fn_kwargs: dict, num_proc: int, desc: str, n: int) -> dict:
    """Run ``fn`` over ``rows`` (a column dict) in chunks; with ``num_proc > 1`` via ``datasets.map``."""
    if num_proc <= 1 or n < 2 * _CHUNK:
        out: dict[str, list] = {}
        for start in tqdm(range(0, n, _CHUNK), desc=desc, disable=n < 4 * _CHUNK, leave=False):
            part = fn({k: v[start : start + _CHUNK] for k, v in rows.items()}, **fn_kwargs)
            for k, v in part.items():
                out.setdefault(k, []).extend(v)
        return out
    from datasets import Dataset

    ds = Dataset.from_dict(rows)
    with _no_rust_threads():  # forked workers must not inherit a busy tokenizers thread pool
        ds = ds.map(fn, batched=True, batch_size=_CHUNK, num_proc=num_proc, fn_kwargs=fn_kwargs,
                    remove_columns=ds.column_names, desc=desc, new_fingerprint=f"{desc}-{n}")  # fmt: skip
    return ds.to_dict()


@contextmanager
def _no_rust_threads():
    old = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = old


def generate(cfg, domain: str, n: int) -> list[dict]:
    """Samples ``0..n-1`` of ``domain``."""
    out = _map(
        {"i": list(range(n))},
        _gen_batch,
        {"cfg": cfg, "domain": domain},
        cfg.num_proc,
        f"generate {domain}",
        n,
    )
    return [json.loads(r) for r in out.get("row", [])]


def measure(samples: list[dict], tokenizer, num_proc: int) -> tuple[list[int], list[int]]:
    """Rendered token counts and reasoning-trace token counts of every sample."""
    rows = {"row": [json.dumps(s, ensure_ascii=False) for s in samples]}
    out = _map(rows, _measure_batch, {"tokenizer": tokenizer}, num_proc, "tokenize", len(samples))
    return out.get("n_tokens", []), out.get("reasoning_tokens", [])
