"""Reasoning control: flags match the ``reasoning`` field; OFF copies render an empty think block."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from data_recipes.config import RecipeConfig
from data_recipes.domains import get
from data_recipes.transforms.reasoning import apply_flag, off_copy, pair_off

DOMAINS = ["math", "code", "tool_calling", "safety", "chat"]


@settings(max_examples=40, deadline=None)
@given(domain=st.sampled_from(DOMAINS), i=st.integers(0, 1000))
def test_off_copy_renders_empty_think_and_same_answers(tokenizer, domain, i):
    on = apply_flag(get(domain).generate(RecipeConfig(seed=4), [i])[0])
    off = off_copy(on)
    assert (
        off["reasoning"] == "off"
        and off["uuid"] != on["uuid"]
        and off["metadata"]["paired_with"] == on["uuid"]
    )
    assert (
        off["messages"][0]["content"].startswith("/no_think")
        and "/think" not in off["messages"][0]["content"][9:]
    )
    assert all(not m["reasoning_content"] for m in off["messages"])
    tools = on["metadata"].get("tools")
    text = tokenizer.apply_chat_template(off["messages"], tools=tools, tokenize=False)
    turns = text.split("<SPECIAL_11>Assistant\n")[1:]
    answers = [m for m in on["messages"] if m["role"] == "assistant"]
    assert len(turns) == len(answers)
    for turn, m in zip(turns, answers):
        assert turn.startswith("<think></think>" + m["content"])
    on_text = tokenizer.apply_chat_template(on["messages"], tools=tools, tokenize=False)
    assert "<think>\n" in on_text and "<think></think>" not in on_text
    for t in (on_text, text):  # flags are stripped from the rendered system turn
        system = t.split("<SPECIAL_12>")[0]
        assert "/think" not in system and "/no_think" not in system


def test_pair_off_share_is_exact_and_seeded():
    samples = [apply_flag(s) for s in get("chat").generate(RecipeConfig(seed=5), list(range(300)))]
    a, b = pair_off(samples, 0.1, seed=1), pair_off(samples, 0.1, seed=1)
    assert len(a) == 30 and [s["uuid"] for s in a] == [s["uuid"] for s in b]
    assert [s["uuid"] for s in pair_off(samples, 0.1, seed=2)] != [s["uuid"] for s in a]
    assert len({s["metadata"]["paired_with"] for s in a}) == 30
    assert pair_off(samples, 0.0, seed=1) == []


@settings(max_examples=30, deadline=None)
@given(domain=st.sampled_from(DOMAINS), i=st.integers(0, 1000))
def test_off_copy_with_working_shows_each_trace_before_its_answer(tokenizer, domain, i):
    on = apply_flag(get(domain).generate(RecipeConfig(seed=4), [i])[0])
    off = off_copy(on, working=True)
    assert all(not m["reasoning_content"] for m in off["messages"])
    assert [m["role"] for m in off["messages"]] == [m["role"] for m in on["messages"]]
    for a, b in zip(on["messages"][1:], off["messages"][1:]):  # [0]: the system flag, checked above
        shown = a["role"] == "assistant" and a.get("reasoning_content") and a.get("content")
        if shown and not a.get("tool_calls"):
            assert b["content"] == a["reasoning_content"].rstrip() + "\n" + a["content"]
        else:  # tool calls and other turns are never rewritten
            assert b["content"] == a["content"] and b.get("tool_calls") == a.get("tool_calls")
    text = tokenizer.apply_chat_template(off["messages"], tools=on["metadata"].get("tools"), tokenize=False)
    assert "<think>\n" not in text


def test_pair_off_shows_working_only_for_the_named_domains():
    cfg = RecipeConfig(seed=5)
    samples = [apply_flag(s) for d in ("math", "chat") for s in get(d).generate(cfg, list(range(60)))]
    plain = {s["uuid"]: s for s in pair_off(samples, 0.5, seed=1)}
    worked = pair_off(samples, 0.5, seed=1, working=frozenset({"math"}))
    assert [s["uuid"] for s in worked] == list(plain) and {s["category"] for s in worked} == {"math", "chat"}
    for s in worked:
        same = s["messages"][-1]["content"] == plain[s["uuid"]]["messages"][-1]["content"]
        assert same == (s["category"] == "chat"), s["category"]


def test_off_working_rejects_an_unknown_domain():
    import pytest

    from data_recipes.errors import DataError

    with pytest.raises(DataError, match="off_working"):
        RecipeConfig(off_working=["maths"])
