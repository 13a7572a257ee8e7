"""Code reward: fraction of the reference unit tests that the model's program passes, in the sandbox.

The program is the last fenced ```python block of the answer (else the last fenced block, else the whole
answer). One sandbox run executes the program and then every test (each an ``assert ...`` snippet) in the
program's namespace, and reports ``<nonce> {"passed": k, "total": n}`` as the last line of stdout. The nonce is
random per call, so a program that merely prints a fake "all passed" summary is not believed; a summary that
is missing (crash, timeout, ``os._exit``) means 0. Limitation: the tests run in the same interpreter as the
program, so code that introspects the harness's frames, or returns always-equal objects, can still game it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from posttrain.rewards._util import load_metadata
from posttrain.rewards.sandbox import run_python

_PY_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_ANY_BLOCK = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)

_HARNESS = """
def _posttrain_harness(program, tests, entry_point, nonce):
    import json, os, sys
    write, flush_out, exit_now = os.write, sys.__stdout__.flush, os._exit
    passed = 0
    ns = {"__name__": "candidate", "__builtins__": __builtins__}
    try:
        exec(compile(program, "<candidate>", "exec"), ns)
        loaded = not entry_point or callable(ns.get(entry_point))
    except BaseException:
        loaded = False
    if loaded:
        for test in tests:
            try:
                exec(compile(test, "<test>", "exec"), ns)
                passed += 1
            except BaseException:
                pass
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    try:
        flush_out()
    except BaseException:
        pass
    summary = json.dumps({"passed": passed, "total": len(tests)})
    write(1, ("\\n" + nonce + " " + summary + "\\n").encode())
    exit_now(0)
"""


def extract_program(answer_text: str) -> str:
    """The code to run: last ```python block, else last fenced block, else the whole answer."""
    for pattern in (_PY_BLOCK, _ANY_BLOCK):
        blocks = pattern.findall(answer_text)
        if blocks:
            return blocks[-1]
    return answer_text


def build_harness(program: str, tests: list[str], nonce: str, entry_point: str | None = None) -> str:
    """Sandbox script that runs ``program`` then ``tests`` and prints the nonce-tagged summary line.

    If ``entry_point`` is given and the program does not define a callable of that name, no test passes.
    """
    args = f"{program!r}, {tests!r}, {entry_point or ''!r}, {nonce!r}"
    return f"{_HARNESS}\n_posttrain_harness({args})\n"


def parse_summary(stdout: str, nonce: str) -> tuple[int, int] | None:
    """(passed, total) from the last stdout line if it carries ``nonce``, else None."""
    lines = stdout.rstrip("\n").splitlines()
    if not lines or not lines[-1].startswith(nonce + " "):
        return None
    try:
        data = json.loads(lines[-1][len(nonce) + 1 :])
        return int(data["passed"]), int(data["total"])
    except (ValueError, KeyError, TypeError):
        return None


def run_tests(
    program: str,
    tests: list[str],
    *,
    entry_point: str | None = None,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
) -> float:
    """Fraction of ``tests`` passing against ``program`` (0.0 on crash, timeout or forged output)."""
    if not tests:
        raise ValueError("code metadata has no tests")
    nonce = secrets.token_hex(16)
    script = build_harness(program, tests, nonce, entry_point)
    result = run_python(script, timeout_s=timeout_s, memory_mb=memory_mb)
    if result.timed_out:
        return 0.0
    summary = parse_summary(result.stdout, nonce)
    if summary is None or summary[1] != len(tests):
        return 0.0
    return min(summary[0], len(tests)) / len(tests)


def score(
    answer_text: str, metadata: Mapping[str, Any] | str, *, timeout_s: float = 5.0, memory_mb: int = 512
) -> float:
    """Fraction of ``metadata["tests"]`` that pass against the answer's program."""
    meta = load_metadata(metadata)
    tests = meta.get("tests")
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise ValueError("code metadata needs 'tests': a list of strings")
    entry_point = meta.get("entry_point") or None
    program = extract_program(answer_text)
    return run_tests(program, tests, entry_point=entry_point, timeout_s=timeout_s, memory_mb=memory_mb)
