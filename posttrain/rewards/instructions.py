"""Instruction-following (IFEval-style) reward: the fraction of ``metadata["constraints"]`` the answer satisfies.

Each constraint is ``{"kind": ..., "value": ...}``. Kinds: ``max_words``/``min_words`` (int, whitespace-split
words), ``lowercase``/``uppercase`` (whole answer), ``include_keywords``/``exclude_keywords`` (list of str,
case-insensitive substring), ``start_with``/``end_with`` (str, case-insensitive, surrounding whitespace
ignored), ``num_bullets`` (int, exact count of lines starting with ``- `` or ``* ``), ``no_commas``.
Unknown kinds raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from posttrain.rewards._util import load_metadata


def _words(text: str) -> int:
    return len(text.split())


def count_bullets(text: str) -> int:
    """Lines that start (after indentation) with ``- `` or ``* ``."""
    return sum(1 for line in text.splitlines() if line.lstrip().startswith(("- ", "* ")))


def _keywords(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"keyword constraint needs a list of strings, got {value!r}")
    return value


CHECKS: dict[str, Callable[[str, Any], bool]] = {
    "max_words": lambda t, v: _words(t) <= int(v),
    "min_words": lambda t, v: _words(t) >= int(v),
    "lowercase": lambda t, v: t == t.lower(),
    "uppercase": lambda t, v: t == t.upper(),
    "include_keywords": lambda t, v: all(k.lower() in t.lower() for k in _keywords(v)),
    "exclude_keywords": lambda t, v: not any(k.lower() in t.lower() for k in _keywords(v)),
    "start_with": lambda t, v: t.strip().lower().startswith(str(v).strip().lower()),
    "end_with": lambda t, v: t.strip().lower().endswith(str(v).strip().lower()),
    "num_bullets": lambda t, v: count_bullets(t) == int(v),
    "no_commas": lambda t, v: "," not in t,
}
NEEDS_VALUE = {"max_words", "min_words", "include_keywords", "exclude_keywords", "start_with", "end_with"}
NEEDS_VALUE |= {"num_bullets"}


def check(text: str, constraint: Mapping[str, Any]) -> bool:
    """Whether ``text`` satisfies one constraint."""
    kind = constraint.get("kind")
    if kind not in CHECKS:
        raise ValueError(f"unknown instruction constraint kind: {kind!r}")
    if kind in NEEDS_VALUE and constraint.get("value") is None:
        raise ValueError(f"constraint {kind!r} needs a 'value'")
    return bool(CHECKS[kind](text, constraint.get("value")))


def score(answer_text: str, metadata: Mapping[str, Any] | str) -> float:
    """Fraction of constraints satisfied by the answer."""
    constraints = load_metadata(metadata).get("constraints")
    if not isinstance(constraints, list) or not constraints:
        raise ValueError("chat metadata needs a non-empty 'constraints' list")
    return sum(check(answer_text, c) for c in constraints) / len(constraints)
