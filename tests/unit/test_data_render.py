"""The build's fast render and token count equal ``apply_chat_template`` and the tokenizer's own ids."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from data_recipes.config import RecipeConfig
from data_recipes.domains import DOMAINS, get
from data_recipes.parallel import _fast_renderer, count_tokens, render, render_many
from data_recipes.transforms.reasoning import apply_flag, off_copy


def _generated(n: int = 12) -> list[dict]:
    cfg = RecipeConfig(name="render", total=n * len(DOMAINS))
    rows = [apply_flag(s) for d in sorted(DOMAINS) for s in get(d).generate(cfg, list(range(n)))]
    return rows + [off_copy(s) for s in rows[::3]]


def test_fast_render_is_used_and_equals_apply_chat_template(tokenizer):
    rows = _generated()
    assert _fast_renderer(tokenizer) is not None
    assert any(s["metadata"].get("tools") for s in rows)  # the tools branch is covered
    assert render_many(tokenizer, rows) == [render(tokenizer, s) for s in rows]


_text = st.text(st.sampled_from(list("ab /think_no<>\n{}\"'")), max_size=30)


@settings(max_examples=60, deadline=None)
@given(system=_text, user=_text, reasoning=st.one_of(st.none(), _text), answer=_text)
def test_fast_render_equals_on_arbitrary_turns(tokenizer, system, user, reasoning, answer):
    msgs = [
        {"role": "system", "content": system, "reasoning_content": None, "tool_calls": None},
        {"role": "user", "content": user, "reasoning_content": None, "tool_calls": None},
        {"role": "assistant", "content": answer, "reasoning_content": reasoning, "tool_calls": None},
    ]
    sample = {"messages": msgs, "metadata": {}}
    assert render_many(tokenizer, [sample]) == [render(tokenizer, sample)]


def test_count_tokens_matches_the_tokenizer(tokenizer):
    texts = render_many(tokenizer, _generated(4)) + ["", "<think>\n</think>", "12345 + 678"]
    want = [len(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    assert count_tokens(tokenizer, texts) == want


def test_count_tokens_ignores_a_backend_set_to_truncate_or_pad(tokenizer):
    """The backend shortcut is taken only when it would not truncate or pad; else ``tokenizer(...)``."""
    texts = render_many(tokenizer, _generated(2))
    want = count_tokens(tokenizer, texts)
    for setup in (lambda b: b.enable_truncation(8), lambda b: b.enable_padding(length=600)):
        tok = copy.deepcopy(tokenizer)
        setup(tok.backend_tokenizer)
        assert count_tokens(tok, texts) == want
