"""The trusted half of the code reward: test compilation, value decoding, and refusing to run unsandboxed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.rewards import code_checks as cc

REPO = Path(__file__).resolve().parents[2]


def _values(*vals):
    return {k: ("ok", v) for k, v in enumerate(vals)}


def test_probes_hold_only_the_candidate_side() -> None:
    (t,) = cc.compile_tests(
        ["xs = [3, 1]\nimport math\nassert f(xs) == [1, 3] and math.isclose(g(0.1), 0.3)"], "f"
    )
    assert t.steps == [
        ("exec", "xs = [3, 1]"),
        ("exec", "import math"),
        ("probe", "f(xs)"),
        ("probe", "g(0.1)"),
    ]
    assert cc.passes(t, _values([1, 3], 0.30000000000000004))
    assert not cc.passes(t, _values([1, 3], 0.4))
    assert not cc.passes(t, _values((1, 3), 0.3))  # a tuple is not the expected list
    assert not cc.passes(t, {0: ("ok", [1, 3])})  # a probe that was never reported fails the check


def test_short_circuit_needs_only_the_probes_it_reaches() -> None:
    (t,) = cc.compile_tests(["assert f(0) is None or f(1) == 2"], "f")
    assert cc.passes(t, {0: ("ok", None), 1: ("err", "ZeroDivisionError")})
    assert not cc.passes(t, {0: ("ok", 5), 1: ("err", "ZeroDivisionError")})


def test_builtins_in_checks_are_the_real_ones() -> None:
    (t,) = cc.compile_tests(["assert isinstance(f(1), int) and len(f(2)) == 3"], "f")
    assert t.steps == [("probe", "f(1)"), ("probe", "f(2)")]
    assert cc.passes(t, _values(1, "abc")) and not cc.passes(t, _values("1", "abc"))
    (t,) = cc.compile_tests(["assert len(3) == 3"], "len")  # the entry point shadows a builtin: a probe
    assert t.steps == [("probe", "len(3)")]


@pytest.mark.parametrize(
    "test, why",
    [
        ("assert all(f(i) == i for i in range(3))", "would run in the candidate"),
        ("def check(c):\n    assert c(1) == 2\ncheck(f)", "unsupported statement"),
        ("from math import isclose\nassert isclose(f(1), 2)", "unsupported statement"),
        ("x = f(1)\nassert x == 2", "unsupported statement"),
        ("xs = [1]", "no top-level assert"),
        ("assert f(1) ==", "not valid Python"),
    ],
)
def test_tests_the_parent_cannot_check_are_refused(test: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        cc.compile_tests([test], "f")


def test_decode_builds_only_plain_values() -> None:
    for value in [
        None,
        True,
        -3,
        2.5,
        1 + 2j,
        "s\n",
        b"b",
        (1, [2, {3: "x"}]),
        {1, 2},
        frozenset({1}),
        set(),
    ]:
        assert cc.decode(repr(value)) == value and type(cc.decode(repr(value))) is type(value)
    assert cc.decode("[nan, -inf]")[1] == float("-inf")
    for bad in [
        "E()",
        "__import__('os')",
        "x",
        "1 + 1",
        "[1] * 10",
        "0x" + "f" * 20000,
        "(" * 500 + ")" * 500,
    ]:
        with pytest.raises(ValueError):
            cc.decode(bad)


def test_checks_cannot_blow_up_the_parent() -> None:
    (t,) = cc.compile_tests(["assert f(1) * 10**9 == 'x'"], "f")
    assert not cc.passes(t, _values("abc"))  # a 3 GB repetition is refused, not built
    (t,) = cc.compile_tests(["assert f(2) ** 10**6 == 1"], "f")
    assert not cc.passes(t, _values(3))


def _score_in_fresh_process(env: dict[str, str]) -> subprocess.CompletedProcess:
    prog = (
        "from posttrain.rewards import code\n"
        "meta = {'entry_point': 'add', 'tests': ['assert add(1, 2) == 3']}\n"
        "try:\n"
        "    print(code.score('def add(a, b):\\n    return a + b', meta))\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, '|', e)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prog], env=env, capture_output=True, text=True, timeout=60, cwd=REPO
    )


def test_without_the_boundary_the_reward_refuses_unless_opted_in() -> None:
    env = {**os.environ, "PATH": "/nonexistent", "PYTHONPATH": str(REPO)}  # no bwrap on PATH
    env.pop("POSTTRAIN_UNSAFE_CODE_REWARD", None)
    out = _score_in_fresh_process(env).stdout.strip()
    assert out.startswith("SandboxUnavailable | ") and "POSTTRAIN_UNSAFE_CODE_REWARD=1" in out
    assert "\n" not in out and "bwrap" in out
    out = _score_in_fresh_process({**env, "POSTTRAIN_UNSAFE_CODE_REWARD": "1"}).stdout.strip()
    assert out == "1.0"


def test_metadata_round_trips_as_json() -> None:
    tests = ["assert f(1) == {'a': (1, 2)}"]
    assert cc.compile_tests(json.loads(json.dumps(tests)), "f")[0].steps == [("probe", "f(1)")]
