"""Completion format: split ``reasoning </think> answer`` and reward well-formedness.

Contract (see the chat template): with reasoning ON the generation prompt ends with ``<think>\\n``, so a
completion is ``"<reasoning>\\n</think>\\n<answer>"`` (a single leading ``<think>`` is tolerated, for callers
that pass the full assistant text); with reasoning OFF the prompt ends with ``<think></think>`` and the
completion is just ``"<answer>"`` without any think tags.
"""

from __future__ import annotations

from typing import NamedTuple

from posttrain.reasoning import THINK_CLOSE, THINK_OPEN, split


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


def split_completion(text: str, reasoning: str | bool) -> Parsed:
    """Split a completion into (reasoning, answer, well_formed).

    The answer is always the text after the *last* ``</think>`` (``posttrain.reasoning.split``) (or the whole text when there is none and
    reasoning is OFF), so verifiers never see reasoning text. With reasoning ON and no ``</think>`` the model
    never finished thinking: everything is reasoning and the answer is empty.

    Well-formed ON: exactly one ``</think>``, no other ``<think>`` (besides one tolerated leading opener), and a
    non-empty answer. Well-formed OFF: no think tags at all and a non-empty answer.
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
    return Parsed(reasoning_text, answer, ok)


def format_reward(text: str, reasoning: str | bool) -> float:
    """1.0 if the completion is well-formed for its reasoning mode, else 0.0."""
    return 1.0 if split_completion(text, reasoning).well_formed else 0.0
