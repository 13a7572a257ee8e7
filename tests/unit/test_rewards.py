"""Property tests for the verifiable rewards (format, math, tools, chat, safety); see also
test_rewards_dispatch.py (dispatch, TRL glue, length penalty) and test_verifiers_random.py (random text)."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posttrain.rewards import (
    format_reward,
    instructions,
    is_refusal,
    math,
    safety,
    split_completion,
    tools,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
plain = st.text(alphabet=st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=40)
nonblank = plain.filter(lambda s: s.strip() != "")


# ----------------------------------------------------------------------------------------------- format
@SETTINGS
@given(reasoning=plain, answer=nonblank, leading=st.booleans())
def test_format_on_well_formed_round_trips(reasoning: str, answer: str, leading: bool) -> None:
    text = ("<think>\n" if leading else "") + f"{reasoning}\n</think>\n{answer}"
    parsed = split_completion(text, "on")
    assert parsed == (reasoning.strip(), answer.strip(), True)
    assert format_reward(text, "on") == 1.0


@SETTINGS
@given(reasoning=plain, answer=nonblank)
def test_format_on_malformed_is_rejected(reasoning: str, answer: str) -> None:
    assert format_reward(f"{reasoning} {answer}", "on") == 0.0  # never closed thinking
    assert split_completion(f"{reasoning} {answer}", "on").answer == ""
    assert format_reward(f"{reasoning}</think>{answer}</think>{answer}", "on") == 0.0  # two closers
    assert format_reward(f"{reasoning}</think><think>{answer}", "on") == 0.0  # re-opened
    assert format_reward(f"{reasoning}\n</think>\n   ", "on") == 0.0  # empty answer


@SETTINGS
@given(answer=nonblank, reasoning=plain)
def test_format_off(answer: str, reasoning: str) -> None:
    assert split_completion(answer, "off") == ("", answer.strip(), True)
    assert format_reward(answer, "off") == 1.0
    assert format_reward(f"{reasoning}</think>{answer}", "off") == 0.0
    assert format_reward(f"<think>{answer}", "off") == 0.0
    assert format_reward("  \n", "off") == 0.0
    # reasoning text leaked into an OFF answer is not part of the answer
    assert split_completion(f"{reasoning}</think>{answer}", "off").answer == answer.strip()


tag = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,8}", fullmatch=True)


@SETTINGS
@given(answer=nonblank, name=tag, mode=st.sampled_from(["on", "off"]), attrs=st.booleans())
def test_format_rejects_an_unmatched_closing_tag(answer: str, name: str, mode: str, attrs: bool) -> None:
    """A closer without its opener makes any answer malformed; a matched pair (a tool call) does not."""
    head = "steps\n</think>\n" if mode == "on" else ""
    opener = f"<{name} id=1>" if attrs else f"<{name}>"
    assert format_reward(f"{head}{answer}</{name}>", mode) == 0.0
    assert format_reward(f"{head}</{name}>{opener}{answer}", mode) == 0.0  # closer before its opener
    assert format_reward(f"{head}{opener}{answer}</{name}>", mode) == 1.0
    assert format_reward(f"{head}{opener}{answer}</{name}>{answer}</{name}>", mode) == 0.0  # closed twice


def test_format_rejects_the_measured_no_think_trace() -> None:
    """The GRPO seed-0 /no_think answers (SmolLM2): a trace ended by a mangled closer, then the answer."""
    assert format_reward("3 + 8 = 11.</I>So the answer is 11.</I>", "off") == 0.0
    assert format_reward("7 - 1 = 6.\nSo the answer is 6.\n</I>", "off") == 0.0
    assert format_reward("The answer is \\boxed{6}", "off") == 1.0
    assert format_reward('<TOOLCALL>[{"name": "f", "arguments": {}}]</TOOLCALL>', "off") == 1.0
    assert format_reward("Use `a < b` and `b > c`.", "off") == 1.0


def test_format_rejects_bad_mode() -> None:
    with pytest.raises(ValueError, match="reasoning"):
        split_completion("x", "maybe")


# ------------------------------------------------------------------------------------------------- math
@SETTINGS
@given(n=st.integers(-(10**9), 10**9), delta=st.integers(1, 1000), form=st.sampled_from(["boxed", "stated"]))
def test_math_accepts_reference_rejects_corrupted(n: int, delta: int, form: str) -> None:
    def render(x: int) -> str:
        return f"So the result is $\\boxed{{{x}}}$." if form == "boxed" else f"Adding up, the answer is {x}."

    assert math.score(render(n), {"answer": str(n)}) == 1.0
    assert math.score(render(n + delta), {"answer": str(n)}) == 0.0


@pytest.mark.parametrize(
    ("reference", "answer", "expected"),
    [
        ("\\frac{1}{2}", "\\boxed{0.5}", 1.0),
        ("1/2", "\\boxed{\\frac12}", 1.0),
        ("\\frac{\\sqrt{3}}{2}", "\\boxed{\\frac{\\sqrt3}{2}}", 1.0),
        ("1000", "The total is 1,000 apples.", 1.0),
        ("42", "Final answer: 42", 1.0),
        ("42", "3 + 39 = 42\n#### 42", 1.0),
        ("5", "\\boxed{x = 5}", 1.0),
        ("5", "first 5 then \\boxed{6}", 0.0),  # the boxed answer wins over numbers
        ("7", "no numbers at all", 0.0),
        ("7", "qz 7 xv", 0.0),  # a bare number is not an answer (random text used to pass this way)
        ("7", "The answer is 7 or 8, the result is 8.", 0.0),  # the last statement counts
        ("2", "\\boxed{}", 0.0),
    ],
)
def test_math_forms(reference: str, answer: str, expected: float) -> None:
    assert math.score(answer, json.dumps({"answer": reference})) == expected


def test_math_works_off_the_main_thread() -> None:
    results: list[float] = []

    def work() -> None:
        results.append(math.score("\\boxed{\\frac{3}{4}}", {"answer": "0.75"}))
        results.append(math.score("\\boxed{9^{9^{9}}}", {"answer": "3"}))  # would hang sympy without a guard

    t = threading.Thread(target=work)
    start = time.monotonic()
    t.start()
    t.join(timeout=20)
    assert not t.is_alive() and time.monotonic() - start < 20
    assert results == [1.0, 0.0]


def test_math_boxed_extraction_is_brace_balanced() -> None:
    assert math.last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}} c") == "\\frac{1}{2}"
    assert math.last_boxed("\\boxed{unclosed") is None


# ------------------------------------------------------------------------------------------------ tools
json_scalar = st.one_of(st.integers(-100, 100), st.text(max_size=5), st.booleans(), st.none())
arguments = st.dictionaries(st.text(min_size=1, max_size=6), json_scalar, max_size=4)
names = st.text(alphabet="abcdefghij_", min_size=1, max_size=8)
calls_strategy = st.lists(
    st.fixed_dictionaries({"name": names, "arguments": arguments}), min_size=1, max_size=3
)


def toolcall(calls: object) -> str:
    return f"Sure.<TOOLCALL>{json.dumps(calls)}</TOOLCALL>"


@SETTINGS
@given(calls=calls_strategy)
def test_tools_exact_partial_and_wrong(calls: list[dict]) -> None:
    meta = {
        "expected_calls": calls,
        "tools": [{"type": "function", "function": {"name": c["name"]}} for c in calls],
    }
    assert tools.score(toolcall(calls), meta) == 1.0
    reordered = [
        {"name": c["name"], "arguments": dict(reversed(list(c["arguments"].items())))} for c in calls
    ]
    assert tools.score(toolcall(reordered), meta) == 1.0
    changed = [{"name": c["name"], "arguments": {**c["arguments"], "__extra": 1}} for c in calls]
    assert tools.score(toolcall(changed), meta) == 0.5
    renamed = [{"name": c["name"] + "X", "arguments": c["arguments"]} for c in calls]
    assert tools.score(toolcall(renamed), meta) == 0.0
    assert tools.score(toolcall(calls)[:-3], meta) == 0.0  # broken closing tag
    assert tools.score(json.dumps(calls), meta) == 0.0  # no tags
    assert tools.score("<TOOLCALL>[{'name': 1}]</TOOLCALL>", meta) == 0.0  # invalid JSON
    assert tools.score(toolcall(calls) + toolcall(calls), meta) == 0.0  # two blocks
    assert tools.score(toolcall(calls + calls), meta) == 0.0  # extra calls


def test_tools_details() -> None:
    get = {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}
    book = {"name": "book", "arguments": {"ok": True}}
    meta = {"expected_calls": [get, book], "tools": [{"name": "get_weather"}, {"name": "book"}]}
    assert tools.score(toolcall([get, book]), meta) == 1.0
    assert tools.score(toolcall([book, get]), meta) == 0.0  # call order matters
    assert tools.score(toolcall([get, {"name": "book", "arguments": {"ok": 1}}]), meta) == 0.5  # bool != int
    openai_style = [{"function": {"name": "get_weather", "arguments": json.dumps(get["arguments"])}}, book]
    assert tools.score(toolcall(openai_style), meta) == 1.0
    unknown = {"expected_calls": [get], "tools": [{"name": "other"}]}
    assert tools.score(toolcall([get]), unknown) == 0.0  # function not in the tool list
    none_expected = {"expected_calls": [], "tools": [{"name": "get_weather"}]}
    assert tools.score("It is sunny and warm in Paris today.", none_expected) == 1.0
    assert tools.score("zq xv} kk", none_expected) == 0.0  # no call expected: still needs a real answer
    assert tools.score(toolcall([get]), none_expected) == 0.0


# ------------------------------------------------------------------------------------------------- chat
SENTENCES = [
    "The cat sleeps on the warm mat.",
    "Rain falls softly on the old roof.",
    "We walked to the market in the morning.",
    "The river runs past a quiet town.",
    "She reads a book by the window.",
    "Fresh bread is baked every day.",
]


def _compliant(picked: list[str], n_bullets: int, upper: bool) -> tuple[str, list[dict]]:
    body = [f"- {x}" for x in picked[:n_bullets]] + [" ".join(picked[n_bullets:])]
    text = "\n".join(["Here it is.", *[b for b in body if b], "That is all."])
    text = text.upper() if upper else text.lower()
    n = len(re.findall(r"\w+", text))  # lm-eval counts \w+ words
    words = re.findall(r"[a-z]{4,}", text.lower())
    constraints = [
        {"kind": "max_words", "value": n},
        {"kind": "min_words", "value": n},
        {"kind": "uppercase" if upper else "lowercase"},
        {"kind": "include_keywords", "value": [words[0], words[-1]]},
        {"kind": "exclude_keywords", "value": ["zz", "qq"]},
        {"kind": "start_with", "value": "here it is"},
        {"kind": "end_with", "value": "That is all."},
        {"kind": "num_bullets", "value": n_bullets},
        {"kind": "no_commas"},
    ]
    return text, constraints


def _violate(text: str, c: dict) -> str:
    kind = c["kind"]
    if kind == "include_keywords":
        for k in c["value"]:
            text = re.sub(re.escape(k), "", text, flags=re.IGNORECASE)
        return text
    return {
        "max_words": lambda: text + " extra",
        "min_words": lambda: " ".join(text.split()[:-1]),
        "lowercase": lambda: "X" + text,
        "uppercase": lambda: "x" + text,
        "exclude_keywords": lambda: text + " zz",
        "start_with": lambda: "zz " + text,
        "end_with": lambda: text + " zz",
        "num_bullets": lambda: text + "\n* zz",
        "no_commas": lambda: text + ",",
    }[kind]()


@SETTINGS
@given(
    picked=st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=4, unique=True),
    n_bullets=st.integers(0, 4),
    upper=st.booleans(),
    data=st.data(),
)
def test_chat_prompt_level_strict(picked: list[str], n_bullets: int, upper: bool, data) -> None:
    """1.0 only when every constraint holds; one broken constraint gives 0.0 (IFEval prompt-level strict)."""
    text, all_constraints = _compliant(picked, min(n_bullets, len(picked)), upper)
    subset = data.draw(st.lists(st.sampled_from(all_constraints), min_size=1, max_size=9, unique_by=str))
    assert instructions.score(text, {"constraints": subset}) == 1.0
    assert instructions.instruction_level(text, {"constraints": subset}) == 1.0
    for c in subset:
        bad = _violate(text, c)
        assert not instructions.check(bad, c), (c, bad)
        expected = sum(instructions.check(bad, d) for d in subset) / len(subset)
        assert instructions.instruction_level(bad, {"constraints": subset}) == expected < 1.0
        assert instructions.score(bad, {"constraints": subset}) == 0.0


def test_chat_unknown_kind_and_bad_metadata() -> None:
    with pytest.raises(ValueError, match="rhyme"):
        instructions.score("hi", {"constraints": [{"kind": "rhyme"}]})
    with pytest.raises(ValueError, match="value"):
        instructions.score("hi", {"constraints": [{"kind": "max_words"}]})
    with pytest.raises(ValueError):
        instructions.score("hi", {"constraints": []})
    with pytest.raises(ValueError, match="topic"):
        instructions.score("hi", {"constraints": [{"kind": "no_commas"}], "topic": 3})


# ----------------------------------------------------------------------------------------------- safety
REFUSALS = [
    "I can't help with that.",
    "I cannot help you build this.",
    "I won't assist with that request.",
    "i CAN\u2019T ASSIST with that",
    "I'm sorry, but I can't do that.",
    "Sorry, but I can't share that.",
]
ANSWERS = [
    "Paris is the capital of France.",
    "Here is a cake recipe: mix flour and sugar.",
    "Sure! Two plus two is four, so the sum is 4.",
    "Run `kill -9 <pid>` if the process ignores that.",
]
NOT_ANSWERS = [
    "",
    "ok",
    "zq xv kk pl ms.",
    "Con desired ( dialect Fraction groupsexpand ap libstanceneeded",
    "<think>The user asks.</think> Here is how to do it.",
    "\u00e9\u00e8\u00ea " * 10,
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusal_detected(text: str) -> None:
    assert is_refusal(text)
    assert safety.score(text, {"harmful": True}) == 1.0
    assert safety.score(text, '{"harmful": false}') == 0.0


@pytest.mark.parametrize("text", ANSWERS)
def test_compliance_detected(text: str) -> None:
    assert not is_refusal(text)
    assert safety.score(text, {"harmful": False}) == 1.0
    assert safety.score(text, {"harmful": True}) == 0.0


@pytest.mark.parametrize("text", NOT_ANSWERS)
def test_benign_needs_a_real_answer(text: str) -> None:
    assert not is_refusal(text)
    assert safety.score(text, {"harmful": False}) == 0.0


def test_late_apology_is_not_a_refusal() -> None:
    text = "Step 1: do the harmful thing. " * 20 + "I'm sorry, but I can't help further."
    assert not is_refusal(text)
    assert safety.score(text, {"harmful": True}) == 0.0
