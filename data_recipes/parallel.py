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
from data_recipes.render import python_renderer
from data_recipes.tokens import count_tokens

_CHUNK = 512


def _gen_batch(batch: dict, cfg, domain: str) -> dict:
    rows = get(domain).generate(cfg, list(batch["i"]))
    return {"row": [json.dumps(r, ensure_ascii=False) for r in rows]}


def render(tokenizer, sample: dict) -> str:
    """The full training text of a sample as the chat template renders it."""
    tools = sample["metadata"].get("tools") or None
    return tokenizer.apply_chat_template(sample["messages"], tools=tools, tokenize=False)


def _fast_renderer(tokenizer):
    """The tokenizer's compiled chat template as a ``(messages, tools) -> text`` function, or None.

    ``apply_chat_template`` deep-copies every message into plain data first (``_plain_template_data``,
    ~30 % of a render here); our rows are plain JSON already, so the compiled template (the same
    sandboxed Jinja object transformers caches) is called with the same arguments directly.
    ``tests/unit/test_data_render.py`` checks the texts are identical to ``apply_chat_template``'s.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return None
    try:
        from transformers.utils.chat_template_utils import _alias_reasoning_fields, _compile_jinja_template
    except ImportError:  # a transformers without these helpers: the public path
        return None
    compiled, kwargs = _compile_jinja_template(template), dict(tokenizer.special_tokens_map)

    def render_one(messages: list[dict], tools: list | None) -> str:
        return compiled.render(
            messages=_alias_reasoning_fields(messages),
            tools=tools,
            documents=None,
            add_generation_prompt=False,
            **kwargs,
        )

    return render_one


def render_many(tokenizer, samples: list[dict]) -> list[str]:
    """The training text of every sample, as ``apply_chat_template(..., tokenize=False)`` renders it.

    A known template renders in plain Python (``render.py``); rows it does not cover, and any other
    template, go through the compiled Jinja template (or ``apply_chat_template`` without one).
    """
    py = python_renderer(getattr(tokenizer, "chat_template", None))
    jinja = _fast_renderer(tokenizer)
    out = []
    for s in samples:
        tools = s["metadata"].get("tools") or None
        text = py(s["messages"], tools) if py is not None else None
        if text is None:
            text = jinja(s["messages"], tools) if jinja is not None else render(tokenizer, s)
        out.append(text)
    return out


def _measure(samples: list[dict], tokenizer) -> dict:
    """Rendered token counts and reasoning-trace token counts."""
    texts = render_many(tokenizer, samples)
    traces = [
        "\n".join(m["reasoning_content"] or "" for m in s["messages"] if m["role"] == "assistant")
        for s in samples
    ]
    counts = count_tokens(tokenizer, texts + traces)
    n = len(samples)
    return {"n_tokens": counts[:n], "reasoning_tokens": counts[n:]}


def _measure_batch(batch: dict, tokenizer) -> dict:
    return _measure([json.loads(r) for r in batch["row"]], tokenizer)


def _parallel_map(rows: dict, fn, fn_kwargs: dict, num_proc: int, desc: str) -> dict:
    """``fn`` over ``rows`` (a column dict of JSON-able values) with ``datasets.map(num_proc=...)``."""
    from datasets import Dataset

    ds = Dataset.from_dict(rows)
    with _no_rust_threads():  # forked workers must not inherit a busy tokenizers thread pool
        ds = ds.map(
            fn,
            batched=True,
            batch_size=_CHUNK,
            num_proc=num_proc,
            fn_kwargs=fn_kwargs,
            remove_columns=ds.column_names,
            desc=desc,
            new_fingerprint=f"{desc}-{len(ds)}",
        )
    return ds.to_dict()


def _chunks(n: int, desc: str):
    return tqdm(range(0, n, _CHUNK), desc=desc, disable=n < 4 * _CHUNK, leave=False)


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
    if cfg.num_proc > 1 and n >= 2 * _CHUNK:
        out = _parallel_map(
            {"i": list(range(n))},
            _gen_batch,
            {"cfg": cfg, "domain": domain},
            cfg.num_proc,
            f"generate {domain}",
        )
        return [json.loads(r) for r in out["row"]]
    builder = get(domain)
    return [
        s
        for a in _chunks(n, f"generate {domain}")
        for s in builder.generate(cfg, list(range(a, min(n, a + _CHUNK))))
    ]


def measure(samples: list[dict], tokenizer, num_proc: int) -> tuple[list[int], list[int]]:
    """Rendered token counts and reasoning-trace token counts of every sample."""
    if num_proc > 1 and len(samples) >= 2 * _CHUNK:
        rows = {"row": [json.dumps(s, ensure_ascii=False) for s in samples]}
        out = _parallel_map(rows, _measure_batch, {"tokenizer": tokenizer}, num_proc, "tokenize")
    else:
        out = {"n_tokens": [], "reasoning_tokens": []}
        for a in _chunks(len(samples), "tokenize"):
            part = _measure(samples[a : a + _CHUNK], tokenizer)
            out["n_tokens"] += part["n_tokens"]
            out["reasoning_tokens"] += part["reasoning_tokens"]
    return out["n_tokens"], out["reasoning_tokens"]
