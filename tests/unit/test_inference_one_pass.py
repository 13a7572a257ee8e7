"""One-pass budgeted generation (posttrain.inference.one_pass) equals the two-call path, greedy."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessor

from posttrain.inference.budget import generate_budgeted

QUESTIONS = [
    "What is 2+3?",
    "Write a function.",
    "Tell me a story about a cat.",
    "Why?",
    "List primes.",
    "hi",
]


def render(tok, q: str, flag: str = "/think") -> str:
    msgs = [{"role": "user", "content": f"{q} {flag}"}]
    return tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


@pytest.fixture(scope="module")
def texts(tiny):
    return [render(tiny[1], q) for q in QUESTIONS] + [render(tiny[1], "hi", "/no_think")]


def both(tiny, texts, **kw):
    stats: dict = {}
    cached = generate_budgeted(*tiny, texts, cached=True, stats=stats, batch_size=4, **kw)
    plain = generate_budgeted(*tiny, texts, cached=False, batch_size=4, **kw)
    return cached, plain, stats


@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(0, 6), grace=st.integers(0, 6), extra=st.integers(0, 8))
def test_one_pass_equals_two_calls(tiny, texts, budget, grace, extra):
    cached, plain, stats = both(tiny, texts, budget=budget, max_tokens=budget + extra + 1, grace_tokens=grace)
    assert cached == plain
    assert stats["one_pass"] + stats["two_call"] == len(texts) - 1  # the /no_think prompt is plain


def prefills(tiny, texts, cached: bool, stats: dict | None = None) -> int:
    """Forward calls that feed more than one token (prefills) for a budget-1, no-grace run."""
    model, tok = tiny
    calls = []

    def hook(module, args, kwargs):
        if kwargs["input_ids"].shape[1] > 1:
            calls.append(1)

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        generate_budgeted(
            model,
            tok,
            texts,
            budget=1,
            max_tokens=8,
            grace_tokens=0,
            cached=cached,
            stats=stats,
            batch_size=8,
        )
    finally:
        handle.remove()
    return len(calls)


def test_answer_continues_from_the_trace_cache(tiny, texts):
    """Every trace is cut at one token and closed: the one pass prefills once, the two-call path twice."""
    stats: dict = {}
    assert prefills(tiny, texts[:4], cached=True, stats=stats) == 1
    assert stats == {"one_pass": 4, "two_call": 0}
    assert prefills(tiny, texts[:4], cached=False) == 2


class EosAt(LogitsProcessor):
    """Forces EOS as the ``at``-th token of an open trace (stateless: counts from ``<think>\\n``)."""

    def __init__(self, tok, at: int):
        self.open_id, self.close_id = (
            tok.convert_tokens_to_ids("<think>"),
            tok.convert_tokens_to_ids("</think>"),
        )
        self.eos, self.at = tok.eos_token_id, at

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for r, row in enumerate(input_ids.tolist()):
            pos = len(row) - 1 - row[::-1].index(self.open_id)
            if self.close_id in row[pos:] or self.eos in row[pos:]:  # the turn marker before is EOS too
                continue
            if len(row) - pos - 2 == self.at - 1:  # prompt has "<think>" "\n"; the next token is number `at`
                scores[r] = float("-inf")
                scores[r, self.eos] = 0.0
        return scores


def test_eos_inside_open_trace_is_rerun_by_two_calls(tiny, texts):
    """The two-call path drops an EOS that ends an open trace and closes it; the one pass hands such
    rows back, so the outputs still agree."""
    model, tok = tiny
    stats: dict = {}
    kw = dict(budget=6, max_tokens=12, grace_tokens=2, batch_size=8)
    cached = generate_budgeted(model, tok, texts[:3], stats=stats, logits_processors=[EosAt(tok, 2)], **kw)
    plain = generate_budgeted(model, tok, texts[:3], cached=False, logits_processors=[EosAt(tok, 2)], **kw)
    assert stats == {"one_pass": 0, "two_call": 3}
    assert cached == plain and all(o.forced_close and o.thinking_tokens == 1 for o in cached)
