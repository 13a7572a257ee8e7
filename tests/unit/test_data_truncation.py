"""Truncated thinking: the cut trace is a prefix within budget at a line/sentence end (or exactly at the
budget), the rendered think block closes right after it, and the answer is kept byte for byte."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from data_recipes.config import RecipeConfig
from data_recipes.domains import get
from data_recipes.transforms.reasoning import apply_flag
from data_recipes.transforms.truncation import count_tokens, cut_reasoning, truncate_sample, truncate_share

PIECES = list("ab xyz019.!?\n=+-") + [" \n"] + ["word ", ". ", ".\n", "  ", "é", "3.5 "]
TEXT = st.lists(st.sampled_from(PIECES), max_size=80).map("".join)


def oracle_prefix(tok, text: str, budget: int) -> str:
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return text[: enc["offset_mapping"][budget - 1][1]]


@settings(max_examples=150, deadline=None)
@given(text=TEXT, budget=st.integers(1, 40))
@example(text="azaword é", budget=6)  # "é" is 2 byte tokens straddling the budget, after a space
def test_cut_is_prefix_within_budget_at_a_boundary(tokenizer, text, budget):
    cut = cut_reasoning(text, budget, tokenizer)
    n = count_tokens(tokenizer, text)
    if n <= budget:
        assert cut is None
        return
    if cut is None:  # only when no non-empty whole-character prefix fits the budget
        prefix = oracle_prefix(tokenizer, text, budget)
        fits = [k for k in range(1, len(prefix) + 1) if prefix[:k].strip()]
        assert all(count_tokens(tokenizer, prefix[:k].rstrip()) > budget for k in fits)
        return
    assert text.startswith(cut) and cut == cut.rstrip()
    assert count_tokens(tokenizer, cut) <= budget
    prefix = oracle_prefix(tokenizer, text, budget)
    bounds = [i for i, c in enumerate(prefix) if c == "\n" and i > 0]
    bounds += [
        m.end() for m in re.finditer(r"[.!?](?=\s)", text[: len(prefix) + 1]) if m.end() <= len(prefix)
    ]
    if bounds and text[: max(bounds)].strip():  # the cut falls at the LAST boundary at or before the budget
        assert len(cut) == len(text[: max(bounds)].rstrip())
    else:  # no boundary: exactly at the budget, less a multi-byte character that straddles it (then
        # less the whitespace before that character too), less any trailing whitespace
        assert cut in (prefix.rstrip(), prefix[:-1].rstrip())


def ast_turns(text: str) -> list[str]:
    return [t.split("<SPECIAL_12>")[0] for t in text.split("<SPECIAL_11>Assistant\n")[1:]]


@settings(max_examples=60, deadline=None)
@given(
    domain=st.sampled_from(["math", "code", "tool_calling", "safety", "chat"]),
    i=st.integers(0, 500),
    budget=st.integers(1, 30),
)
def test_rendered_trace_closes_right_after_cut_and_answer_kept(tokenizer, domain, i, budget):
    sample = apply_flag(get(domain).generate(RecipeConfig(seed=1), [i])[0])
    cut = truncate_sample(sample, budget, tokenizer)
    if cut is None:
        assert all(
            count_tokens(tokenizer, m["reasoning_content"] or "") <= budget for m in sample["messages"]
        )
        return
    meta = cut["metadata"]
    assert meta["thinking_budget"] == budget and meta["truncated_tokens"] <= budget < meta["reasoning_tokens"]
    rendered = tokenizer.apply_chat_template(cut["messages"], tools=meta.get("tools"), tokenize=False)
    for before, after, turn in zip(sample["messages"], cut["messages"], [m for m in cut["messages"]]):
        assert after["content"] == before["content"] and after["tool_calls"] == before["tool_calls"]
        assert after["role"] == before["role"] == turn["role"]
    changed = [(b, a) for b, a in zip(sample["messages"], cut["messages"]) if b != a]
    assert len(changed) == 1
    before, after = changed[0]
    assert before["reasoning_content"].startswith(after["reasoning_content"])
    assert before["reasoning_content"][: meta["truncated_at"]] == after["reasoning_content"]
    block = f"<think>\n{after['reasoning_content']}\n</think>\n{after['content']}"
    assert block in rendered
    turn = ast_turns(rendered)[[m for m in cut["messages"] if m["role"] == "assistant"].index(after)]
    assert turn.startswith(f"<think>\n{after['reasoning_content']}\n</think>\n")
    assert turn.split("</think>\n", 1)[1].startswith(after["content"])  # answer byte for byte


def test_truncate_share_hits_the_requested_share(tokenizer):
    samples = [apply_flag(s) for s in get("math").generate(RecipeConfig(seed=2), list(range(200)))]
    samples[0] = {**samples[0], "reasoning": "off"}
    n = truncate_share(samples, 0.1, (4, 12), seed=0, tokenizer=tokenizer)
    assert n == round(0.1 * 199)
    cut = [s for s in samples if "truncated_at" in s["metadata"]]
    assert len(cut) == n and all(s["reasoning"] == "on" for s in cut)
    assert all(4 <= s["metadata"]["thinking_budget"] <= 12 for s in cut)
    assert truncate_share(samples, 0.0, (4, 12), seed=0, tokenizer=tokenizer) == 0
