"""One split rule for the reasoning format (``posttrain.reasoning``), and every caller agrees with it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from posttrain.inference.budget import _n_think
from posttrain.inference.client import ThinkingBudgetClient
from posttrain.reasoning import (
    FLAG_OFF,
    FLAG_ON,
    THINK_CLOSE,
    THINK_OPEN,
    close_for,
    flag,
    opens_trace,
    split,
    strip_flags,
)
from posttrain.rewards.format import split_completion

plain = st.text(alphabet=st.sampled_from(list("ab \n.")), max_size=12)
with_tags = st.lists(st.sampled_from(["a", " ", "\n", THINK_CLOSE, "b"]), max_size=10).map("".join)


@given(with_tags, plain)
def test_answer_is_after_the_last_close(head, answer):
    got = split(head + THINK_CLOSE + answer)
    assert got.closed and got.answer == answer.lstrip("\n")
    assert got.reasoning == head.strip("\n")


@given(plain)
def test_unclosed_text_is_all_reasoning(text):
    assert split(text) == (text.strip("\n"), "", False)


@given(with_tags, plain)
def test_rewards_and_client_use_the_same_answer(head, answer):
    """A double-closed trace is judged on the same answer by the verifiers (format.split_completion),
    the client's result and generate_budgeted (both via ``split``): the text after the last close."""
    text = head + THINK_CLOSE + answer
    want = split(text).answer
    assert split_completion(text, "on").answer == want.strip()
    res = ThinkingBudgetClient._result(text, "", "stop", False, 0)
    assert res["content"] == want and res["reasoning_content"] == split(text).reasoning.strip()


@given(plain, plain)
def test_opens_trace(before, inside):
    assert opens_trace(before + THINK_OPEN + inside)
    assert not opens_trace(before + THINK_OPEN + inside + THINK_CLOSE)
    assert not opens_trace(before + THINK_OPEN + THINK_CLOSE)


@given(plain)
def test_close_for_renders_the_template_separator(text):
    closed = text + close_for(text)
    assert closed.endswith("\n" + THINK_CLOSE + "\n") and "\n\n" + THINK_CLOSE not in closed[len(text) - 1 :]
    assert close_for(text, ".X") == ".X"


@given(st.lists(st.sampled_from(["x ", FLAG_ON, FLAG_OFF, " y"]), max_size=6).map("".join))
def test_flags(text):
    assert FLAG_ON not in strip_flags(text) and FLAG_OFF not in strip_flags(text)
    assert flag("off") == FLAG_OFF and flag("on") == FLAG_ON


def test_thinking_tokens_run_to_the_last_close(tokenizer):
    ids = tokenizer("a b" + THINK_CLOSE + "c" + THINK_CLOSE + "d", add_special_tokens=False)["input_ids"]
    text = tokenizer.decode(ids)
    before_last = tokenizer("a b" + THINK_CLOSE + "c", add_special_tokens=False)["input_ids"]
    assert _n_think(tokenizer, ids, text) == len(before_last)
    unclosed = tokenizer("a b c", add_special_tokens=False)["input_ids"]
    assert _n_think(tokenizer, unclosed, "a b c") == len(unclosed)
