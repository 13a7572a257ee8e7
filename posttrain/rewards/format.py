"""Completion format: split ``reasoning </think> answer`` and reward well-formedness.

Contract (see the chat template): with reasoning ON the generation prompt ends with ``<think>\\n``, so a
completion is ``"<reasoning>\\n</think>\\n<answer>"`` (a single leading ``<think>`` is tolerated, for callers
that pass the full assistant text); with reasoning OFF the prompt ends with ``<think></think>`` and the
completion is just ``"<answer>"`` without any think tags. In both modes the answer closes no tag it did
not open (``</I>``, ``</answer>``): a mangled think closer is how a policy hid a trace in ``/no_think``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

from posttrain.reasoning import THINK_CLOSE, THINK_OPEN, split

_TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)(?:\s[^<>]*)?>")


class Parsed(NamedTuple):
    reasoning: str
    answer: str
    well_formed: bool


def reasoning_on(reasoning: str | bool) -> bool:
    """Normalise the ``reasoning`` column (``"on"``/``"off"`` or a bool) to a bool."""
    if isinstance(reasoning, bool):
        return reasoning
    value = str(reasoning).strip().lower()
    if value in ("on", "true", "1"):
        return True
    if value in ("off", "false", "0"):
        return False
    raise ValueError(f"reasoning must be 'on' or 'off', got {reasoning!r}")


def stray_close_tag(answer: str) -> str | None:
    """The first closing tag (``</X>``) in ``answer`` with no open ``<X ...>`` before it, or None.

    Why: a policy gated on "no think tags in /no_think" learned to think in the answer and end the
    trace with a mangled closer instead (measured on SmolLM2, GRPO seed 0: 69 of 120 ``/no_think`` math
    answers ended ``... So the answer is 13.</I>``). An unmatched closer is malformed in any answer.
    """
    open_: Counter[str] = Counter()
    for m in _TAG.finditer(answer):
        closing, name = m.group(1), m.group(2)
        if not closing:
            open_[name] += 1
        elif open_[name] > 0:
            open_[name] -= 1
        else:
            return m.group(0)
    return None


def split_completion(text: str, reasoning: str | bool) -> Parsed:
    """Split a completion into (reasoning, answer, well_formed).

    The answer is always the text after the *last* ``</think>`` (``posttrain.reasoning.split``) (or the whole text when there is none and
    reasoning is OFF), so verifiers never see reasoning text. With reasoning ON and no ``</think>`` the model
    never finished thinking: everything is reasoning and the answer is empty.

    Well-formed ON: exactly one ``</think>``, no other ``<think>`` (besides one tolerated leading opener), and a
    non-empty answer. Well-formed OFF: no think tags at all and a non-empty answer. In both modes the
    answer has no unmatched closing tag (``stray_close_tag``).
    """
    on = reasoning_on(reasoning)
    body = text
    if on:
        stripped = body.lstrip()
        if stripped.startswith(THINK_OPEN):
            body = stripped[len(THINK_OPEN) :]
    head, tail, closed = split(body)
    if not closed and not on:
        head, tail = "", body
    reasoning_text, answer = head.strip(), tail.strip()
    if on:
        ok = body.count(THINK_CLOSE) == 1 and THINK_OPEN not in body and bool(answer)
    else:
        ok = THINK_OPEN not in text and THINK_CLOSE not in text and bool(answer)
    ok = ok and stray_close_tag(answer) is None
    return Parsed(reasoning_text, answer, ok)


def format_reward(text: str, reasoning: str | bool) -> float:
    """1.0 if the completion is well-formed for its reasoning mode, else 0.0."""
    return 1.0 if split_completion(text, reasoning).well_formed else 0.0
