"""The dense math-step reward: right and grounded steps over all steps, on real generated traces."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from data_recipes.domains.math import expression_steps
from posttrain.rewards.steps import math_steps_reward, step_score

ops = st.sampled_from(["+", "-", "*"])
num = st.integers(0, 99)


@st.composite
def expressions(draw):
    terms = draw(st.lists(num, min_size=2, max_size=4))
    expr = str(terms[0])
    for t in terms[1:]:
        expr += f" {draw(ops)} {t}"
    return expr


@settings(max_examples=80, deadline=None)
@given(expressions())
def test_the_recipe_trace_scores_one_and_a_wrong_step_lowers_it(expr):
    steps = expression_steps(expr)
    trace = "\n".join(steps) + "\nSo the answer is x."
    problem = f"Calculate {expr}."
    assert step_score(trace, problem) == 1.0
    lhs, rhs = steps[-1].rsplit("=", 1)  # the last step wrong: earlier steps keep their credit
    wrong = [*steps[:-1], f"{lhs}= {int(rhs.strip(' .')) + 1}."]
    assert step_score("\n".join(wrong), problem) == (len(steps) - 1) / len(steps)


@settings(max_examples=60, deadline=None)
@given(a=st.integers(100, 999), b=st.integers(100, 999))
def test_ungrounded_padding_does_not_pay(a, b):
    problem = f"Calculate {a} + {b}."
    right = f"{a} + {b} = {a + b}."
    assert step_score(right, problem) == 1.0
    padded = right + "\n1 + 1 = 2.\n2 + 2 = 4."  # true but unrelated to the problem
    assert step_score(padded, problem) == 1 / 3
    chained = right + f"\n{a + b} - {a} = {b}."  # uses an earlier result: grounded
    assert step_score(chained, problem) == 1.0


def test_forms_that_are_not_single_steps_count_as_wrong_and_no_steps_score_zero():
    assert step_score("67 + 2 * 96 = 259.", "Calculate 67 + 2 * 96.") == 0.0
    assert step_score("I think the answer is big.", "Calculate 3 + 4.") == 0.0
    assert step_score("2 + 3 = 5.\n-(5) = -5.", "Calculate -(2 + 3).") == 1.0
    assert step_score("6 / 4 = 3/2.\n3/2 * 2 = 3.", "Calculate 6 / 4 * 2.") == 1.0


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_random_text_scores_zero_or_is_a_real_step(text):
    s = step_score(text, "Calculate 12 + 30.")
    assert 0.0 <= s <= 1.0
    assert s == 0.0 or "=" in text


def test_trl_adapter_reads_the_trace_of_math_rows_only():
    prompts = [[{"role": "user", "content": "Calculate 8 + 7 - 1."}]] * 3
    completions = ["8 + 7 = 15.\n15 - 1 = 13.\n</think>\n\\boxed{13}", "8 + 7 = 15.\n</think>\n15", "x"]
    got = math_steps_reward(prompts, completions, category=["math", "math", "chat"], reasoning=["on"] * 3)
    assert got == [0.5, 1.0, 0.0]
    off = math_steps_reward(prompts[:1], ["8 + 7 = 15"], category=["math"], reasoning=["off"])
    assert off == [0.0]  # reasoning OFF: no trace to read


def test_steps_earn_nothing_outside_a_well_formed_think_trace():
    prompts = [[{"role": "user", "content": "Calculate 8 + 7 - 1."}]] * 3
    hack = "8 + 7 = 15.\n15 - 1 = 14.\n</think></think>The answer is \\boxed{14}"
    two_closes = "8 + 7 = 15.\n</think>\n15 - 1 = 14.\n</think>\n\\boxed{14}"
    got = math_steps_reward(
        prompts,
        [hack, two_closes, "8 + 7 = 15.\n</think>\n"],
        category=["math"] * 3,
        reasoning=["off", "on", "on"],
    )
    assert got == [0.0, 0.0, 0.0]  # /no_think that thinks; two closes; no answer after the trace
    ok = math_steps_reward(
        prompts[:1], ["8 + 7 = 15.\n</think>\n\\boxed{15}"], category=["math"], reasoning=["on"]
    )
    assert ok == [1.0]


@settings(max_examples=80, deadline=None)
@given(expressions())
def test_place_value_traces_are_right_step_by_step_and_end_at_the_value(expr):
    """Every place-value line is one right ``a op b = c`` (the form ``rewards.steps`` checks), no
    line needs a fact with two 2-digit operands except a 2-digit product, and the last value is exact."""
    import re
    from fractions import Fraction

    from posttrain.rewards.steps import _BINARY, _NEGATION, _OPS

    steps = expression_steps(expr, place_value=True)
    for line in steps:
        m, neg = _BINARY.match(line), _NEGATION.match(line)
        assert m or neg, line
        if m:
            a, op, b, c = Fraction(m[1]), m[2], Fraction(m[3]), Fraction(m[4])
            assert _OPS[op](a, b) == c, line
            two_digit = [x for x in (a, b) if abs(x) >= 10 and x % 10]
            assert len(two_digit) < 2 or op == "*" or min(a, b) < 0, line
    final = steps[-1].rsplit("= ", 1)[1].rstrip(".")
    assert Fraction(final) == Fraction(eval(expr))  # noqa: S307 (a generated integer expression)
    assert len(steps) >= len(expression_steps(expr))
    assert all(re.search(r"\d", s) for s in steps)
