"""Reward tests: score() dispatch, the TRL GRPO reward-function adapters and the length penalty."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posttrain.rewards import (
    correctness_reward,
    format_reward_fn,
    length_penalty,
    make_length_penalty,
    score,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
plain = st.text(alphabet=st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=40)
nonblank = plain.filter(lambda s: s.strip() != "")


# --------------------------------------------------------------------------------------------- dispatch
def test_dispatch_scores_only_the_answer() -> None:
    meta = {"answer": "42"}
    assert score("math", meta, "I think \\boxed{42}\n</think>\nIt is \\boxed{42}.", "on") == 1.0
    assert score("math", meta, "maybe \\boxed{42}\n</think>\nIt is \\boxed{7}.", "on") == 0.0
    assert score("math", meta, "thinking \\boxed{42} ... (truncated)", "on") == 0.0  # never closed
    assert score("math", json.dumps(meta), "<think>\nhmm\n</think>\n\\boxed{42}", "on") == 1.0
    assert score("safety", {"harmful": False}, "I can't decide\n</think>\n", "on") == 0.0  # empty answer
    hello = "hello there. the cat sleeps on the warm mat."
    assert score("chat", {"constraints": [{"kind": "lowercase"}]}, hello, "off") == 1.0
    assert score("chat", {"constraints": [{"kind": "lowercase"}]}, "qz xv kk.", "off") == 0.0  # not prose
    # Arrow struct columns give every row every key (None where absent)
    assert score("math", {"answer": "42", "tests": None, "harmful": None}, "\\boxed{42}", "off") == 1.0
    lower = {"constraints": [{"kind": "lowercase", "value": None}], "answer": None}
    assert (
        score("chat", lower, hello, "off") == 1.0 and score("chat", lower, hello.capitalize(), "off") == 0.0
    )
    with pytest.raises(ValueError, match="poetry"):
        score("poetry", {}, "x", "off")


# --------------------------------------------------------------------------------------------- TRL glue
def _trl_call(fn, completions: list, **columns):
    """Call a reward function exactly as TRL 1.16's GRPOTrainer._calculate_rewards does."""
    reward_kwargs = {
        **columns,
        "trainer_state": object(),
        "log_extra": lambda *a: None,
        "log_metric": lambda *a: None,
    }
    prompts = [[{"role": "user", "content": "q"}]] * len(completions)
    return fn(
        prompts=prompts, completions=completions, completion_ids=[[1, 2]] * len(completions), **reward_kwargs
    )


def test_trl_call_convention_matches_installed_trl() -> None:
    spec = importlib.util.find_spec("trl")
    if spec is None or spec.origin is None:
        pytest.skip("trl not installed")
    source = (Path(spec.origin).parent / "trainer" / "grpo_trainer.py").read_text()
    call = "prompts=prompts, completions=completions, completion_ids=completion_ids_list, **reward_kwargs"
    assert call in source
    assert '"trainer_state"' in source and '"log_extra"' in source and '"log_metric"' in source


def test_trl_adapters_batch() -> None:
    def msg(text: str) -> list[dict]:
        return [{"role": "assistant", "content": text}]

    add = {"entry_point": "add", "tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]}
    good_code, bad_code = (
        "```python\ndef add(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return 3\n```",
    )
    completions = [
        msg("hmm\n</think>\n\\boxed{4}"),
        msg(good_code),
        msg(bad_code),
        "plain string: \\boxed{5}",
        [
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "call it",
                "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}],
            }
        ],
        msg("I'm sorry, but I can't help with that."),
    ]
    columns = {
        "category": ["math", "code", "code", "math", "tool_calling", "safety"],
        "reasoning": ["on", "off", "off", "off", "on", "off"],
        "metadata": [
            {"answer": "4"},
            json.dumps(add),
            add,
            {"answer": "4"},
            {"expected_calls": [{"name": "f", "arguments": {"x": 1}}]},
            {"harmful": True},
        ],
    }
    assert _trl_call(correctness_reward, completions, **columns) == [1.0, 1.0, 0.5, 0.0, 1.0, 1.0]
    assert _trl_call(format_reward_fn, completions, **columns) == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert (
        correctness_reward.__name__ == "correctness_reward"
        and format_reward_fn.__name__ == "format_reward_fn"
    )


def test_correctness_reward_runs_code_concurrently() -> None:
    slow = "```python\nimport time\ntime.sleep(0.6)\ndef f():\n    return 1\n```"
    meta = {"entry_point": "f", "tests": ["assert f() == 1"]}
    n = 4
    start = time.monotonic()
    out = correctness_reward(
        completions=[slow] * n,
        category=["code"] * n,
        metadata=[meta] * n,
        reasoning=["off"] * n,
        code_workers=n,
    )
    elapsed = time.monotonic() - start
    assert out == [1.0] * n
    assert elapsed < 0.6 * n, f"code sandboxes did not overlap ({elapsed:.2f}s)"


class _WhitespaceTokenizer:
    def __call__(self, texts: list[str], add_special_tokens: bool = True) -> dict:
        assert add_special_tokens is False
        return {"input_ids": [[0] * len(t.split()) for t in texts]}


def test_length_penalty_adapter() -> None:
    fn = make_length_penalty(10, 1.0, _WhitespaceTokenizer())
    completions = [
        [{"role": "assistant", "content": "w " * 5 + "\n</think>\nok"}],  # under budget
        [{"role": "assistant", "content": "w " * 15 + "\n</think>\nok"}],  # 50% over
        [{"role": "assistant", "content": "w " * 40}],  # never closed: all thinking, capped at -1
        [{"role": "assistant", "content": "w " * 40}],  # reasoning off: no penalty
    ]
    out = _trl_call(
        fn, completions, reasoning=["on", "on", "on", "off"], category=["chat"] * 4, metadata=["{}"] * 4
    )
    assert out == [0.0, pytest.approx(-0.5), -1.0, 0.0]
    assert fn.__name__ == "length_penalty"


# ----------------------------------------------------------------------------------------------- length
@SETTINGS
@given(
    n=st.integers(0, 10**6), budget=st.integers(1, 10**5), slope=st.floats(0, 10), extra=st.integers(0, 1000)
)
def test_length_penalty_properties(n: int, budget: int, slope: float, extra: int) -> None:
    p = length_penalty(n, budget, slope=slope)
    assert -1.0 <= p <= 0.0
    assert length_penalty(n + extra, budget, slope=slope) <= p  # non-increasing in length
    if n <= budget:
        assert p == 0.0
    else:
        assert p == pytest.approx(-min(1.0, slope * (n - budget) / budget))


def test_length_penalty_validates() -> None:
    assert length_penalty(150, 100, slope=1.0) == pytest.approx(-0.5)
    assert length_penalty(10**6, 100, slope=1.0) == -1.0
    with pytest.raises(ValueError):
        length_penalty(1, 0, slope=1.0)
    with pytest.raises(ValueError):
        length_penalty(1, 10, slope=-1.0)


def test_correctness_in_format_scores_nothing_for_a_no_think_answer_that_thinks() -> None:
    from posttrain.rewards import correctness_in_format_reward

    meta = {"answer": "9"}
    thinks_anyway = "7 - 1 = 6.\n6 + 3 = 9.\n</think></think>The answer is \\boxed{9}"  # measured on SmolLM2
    plain = "The answer is \\boxed{9}"
    wrong = "The answer is \\boxed{8}"
    cols = {"category": ["math"] * 3, "metadata": [meta] * 3, "reasoning": ["off"] * 3}
    comps = [thinks_anyway, plain, wrong]
    assert correctness_reward(completions=comps, **cols) == [1.0, 1.0, 0.0]  # the answer after the last close
    assert format_reward_fn(completions=comps, **cols) == [0.0, 1.0, 1.0]
    assert correctness_in_format_reward(completions=comps, **cols) == [0.0, 1.0, 0.0]
    on = {"category": ["math"], "metadata": [meta], "reasoning": ["on"]}
    assert correctness_in_format_reward(
        completions=["6 + 3 = 9.\n</think>The answer is \\boxed{9}"], **on
    ) == [1.0]
