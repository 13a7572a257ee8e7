"""Code reward: fraction of the reference unit tests that the model's program passes, decided by the parent.

The program is the last fenced ```python block of the answer (else the last fenced block, else the whole
answer). ``code_checks.compile_tests`` splits every test (``assert`` snippets) into *probes*, the
expressions that need the candidate (``add(1, 2)``), and checks that only the parent evaluates
(``== 3``). One sandbox run (``sandbox.run_python``) executes the program and then the probes in its
namespace, and writes each probe's ``repr`` to a side channel. The parent decodes those into plain values
and counts a test as passed when all its checks hold.

The child is never sent the expected values, and nothing it writes is trusted beyond "this probe had this
plain value": a program that forges records, patches the harness, returns always-equal objects or int
subclasses, or exits early gains nothing it did not compute. Tests whose values arrived before a crash or
timeout still count; a program that does not define ``entry_point`` passes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from posttrain.rewards import code_checks
from posttrain.rewards._util import load_metadata
from posttrain.rewards.sandbox import run_python

_PY_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_ANY_BLOCK = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)

# Runs in the sandbox after the program; it is as untrusted as the program (which may rewrite it).
_RUNNER = """
def _posttrain_runner(program, entry_point, tests):
    import os
    fd = int(os.environ["POSTTRAIN_CHANNEL_FD"])
    write, plain_types = os.write, (bool, int, float, complex, str, bytes, type(None))

    def plain(v, depth=0):
        if depth > 50:
            raise ValueError("too deep")
        for t in plain_types:
            if isinstance(v, t):
                return t(v) if t is not type(None) else None
        for t in (tuple, list, set, frozenset):
            if isinstance(v, t):
                return t(plain(x, depth + 1) for x in v)
        if isinstance(v, dict):
            return {plain(k, depth + 1): plain(x, depth + 1) for k, x in v.items()}
        raise TypeError(type(v).__name__)

    def emit(*record):
        write(fd, (repr(record) + "\\n").encode())

    ns = {"__name__": "candidate", "__builtins__": __builtins__}
    try:
        exec(compile(program, "<candidate>", "exec"), ns)
        loaded = not entry_point or callable(ns.get(entry_point))
    except BaseException:
        loaded = False
    emit("loaded", bool(loaded))
    if not loaded:
        return
    for i, steps in enumerate(tests):
        k = 0
        try:
            for kind, source in steps:
                if kind == "exec":
                    exec(compile(source, "<test>", "exec"), ns)
                    continue
                try:
                    emit("value", i, k, repr(plain(eval(compile(source, "<test>", "eval"), ns))))
                except BaseException as e:
                    emit("error", i, k, type(e).__name__)
                k += 1
            emit("done", i)
        except BaseException:
            emit("failed", i)
"""


def extract_program(answer_text: str) -> str:
    """The code to run: last ```python block, else last fenced block, else the whole answer."""
    for pattern in (_PY_BLOCK, _ANY_BLOCK):
        blocks = pattern.findall(answer_text)
        if blocks:
            return blocks[-1]
    return answer_text


def build_harness(program: str, tests: list[code_checks.Test], entry_point: str | None = None) -> str:
    """Sandbox script: run ``program``, then each test's steps, writing probe records to the channel fd."""
    steps = [t.steps for t in tests]
    return f"{_RUNNER}\n_posttrain_runner({program!r}, {entry_point or ''!r}, {steps!r})\n"


def parse_records(data: bytes, tests: list[code_checks.Test]) -> list[bool]:
    """Per-test pass flags from the child's records; malformed or missing records count as failures."""
    loaded, done = False, set()
    values: dict[int, dict[int, tuple[str, Any]]] = {i: {} for i in range(len(tests))}
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            record = code_checks.decode(line)
        except ValueError:
            continue
        if not isinstance(record, tuple) or not record:
            continue
        kind, rest = record[0], record[1:]
        if kind == "loaded" and rest == (True,):
            loaded = True
        elif kind == "done" and len(rest) == 1 and rest[0] in values:
            done.add(rest[0])
        elif kind in ("value", "error") and len(rest) == 3 and rest[0] in values:
            i, k, payload = rest
            if not isinstance(k, int) or k in values[i] or not isinstance(payload, str):
                continue
            try:
                values[i][k] = ("ok", code_checks.decode(payload)) if kind == "value" else ("err", payload)
            except ValueError as e:
                values[i][k] = ("err", str(e))
    if not loaded:
        return [False] * len(tests)
    return [i in done and code_checks.passes(t, values[i]) for i, t in enumerate(tests)]


def run_tests(
    program: str,
    tests: list[str],
    *,
    entry_point: str | None = None,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
) -> float:
    """Fraction of ``tests`` whose checks hold on the values ``program`` computed in the sandbox."""
    if not tests:
        raise ValueError("code metadata has no tests")
    compiled = code_checks.compile_tests(tests, entry_point)
    script = build_harness(program, compiled, entry_point)
    result = run_python(script, timeout_s=timeout_s, memory_mb=memory_mb, channel=True)
    return sum(parse_records(result.channel, compiled)) / len(tests)


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
