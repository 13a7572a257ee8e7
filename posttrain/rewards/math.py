"""Math reward: 1.0 if the model's final answer is mathematically equal to the reference, else 0.0.

The candidate is the content of the last ``\\boxed{...}`` in the answer text, else the number of the
last answer statement: ``answer``/``result``/``total``/``sum``, then ``is``/``=``/``:``/``equals``, then a
number (``The answer is 42``, ``Total: 1,000``) or GSM8K's ``#### 42`` line. A bare number anywhere in the
text is *not* a candidate: random text that happens to contain the right digit must not score (it did
before, when the fallback was the last number in the text).
Equality is decided by ``math_verify`` (``parse`` + ``verify``). math_verify implements its timeouts with
``signal.alarm``, which only works on the main thread: there we keep its timeouts; on other threads we disable
them (``parsing_timeout=None`` / ``timeout_seconds=None``) and instead refuse candidates that can make sympy
run for ages (power towers, huge exponents/factorials).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from posttrain.rewards._util import load_metadata

MAX_CANDIDATE_CHARS = 512
TIMEOUT_S = 5
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?"
_STATED = re.compile(
    r"\b(?:answer|result|total|sum)\s*(?:is|=|:|equals)\s*\$?\s*("
    + _NUMBER
    + r")|^\s*####\s*("
    + _NUMBER
    + r")",
    re.IGNORECASE | re.MULTILINE,
)
# Power towers (an exponent containing another power), big exponents, factorials of big numbers.
_EXPENSIVE = re.compile(r"\^\s*\{[^}]*\^|\^\s*\d+\s*\^|\^\s*\{?\s*\d{5,}|\d{4,}\s*!|\*\*")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (brace-balanced), or None."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
    return None


def stated_number(text: str) -> str | None:
    """The number of the last "answer is N" / "#### N" statement (thousands separators removed), or None."""
    found = [a or b for a, b in _STATED.findall(text)]
    return found[-1].replace(",", "").replace(" ", "") if found else None


def extract_candidate(answer_text: str) -> str | None:
    """The model's final answer: last boxed expression, else the last stated answer number."""
    boxed = last_boxed(answer_text)
    return boxed if boxed else stated_number(answer_text)


def _parse(expr: str, timeout: int | None) -> list[Any]:
    from math_verify import parse

    return parse(expr, parsing_timeout=timeout)


def is_equivalent(reference: str, candidate: str) -> bool:
    """math_verify equality of two answer strings; never raises."""
    from math_verify import verify

    on_main = threading.current_thread() is threading.main_thread()
    timeout = TIMEOUT_S if on_main else None
    if not candidate or len(candidate) > MAX_CANDIDATE_CHARS:
        return False
    if not on_main and _EXPENSIVE.search(candidate):
        return False
    try:
        gold: list[Any] = []
        for form in (f"${reference}$", f"\\boxed{{{reference}}}", reference):
            gold = _parse(form, timeout)
            if gold:
                break
        pred = _parse(f"\\boxed{{{candidate}}}", timeout) or _parse(candidate, timeout)
        if not gold or not pred:
            return False
        return bool(verify(gold, pred, timeout_seconds=timeout))
    except Exception:  # math_verify/sympy may raise TimeoutException, RecursionError, ...
        return False


def score(answer_text: str, metadata: Mapping[str, Any] | str) -> float:
    """1.0 if the answer's final result equals ``metadata["answer"]`` per math_verify, else 0.0."""
    meta = load_metadata(metadata)
    if "answer" not in meta:
        raise ValueError("math metadata needs an 'answer' field")
    candidate = extract_candidate(answer_text)
    if candidate is None:
        return 0.0
    return 1.0 if is_equivalent(str(meta["answer"]).strip(), candidate) else 0.0
