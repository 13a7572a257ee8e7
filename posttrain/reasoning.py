"""The Nano 2 reasoning format, in one place: flags, think tags, close strings and the split rule.

A completion in reasoning-ON mode is ``"<trace>\\n</think>\\n<answer>"`` (the generation prompt ends with
``<think>\\n``); in OFF mode the prompt ends with ``<think></think>`` and the completion is the answer.

**The split rule** (every caller: rewards, budgeted generation, eval, server, client): the answer is the
text after the *last* ``</think>``; everything before it is reasoning. So on a double-closed trace
(``a </think> b </think> c``, the typical failure of a small model) the verifiers, the refusal check and
the thinking-token count all judge the same answer, ``c``. The tag and flag literals come from the data
contract (``data_recipes.schema``, which validates them in the data); this module imports nothing from
posttrain, so every layer can use it.
"""

from __future__ import annotations

from typing import NamedTuple

from data_recipes.schema import FLAGS as REASONING_FLAGS  # ("/no_think", "/think"): longest first
from data_recipes.schema import THINK_CLOSE, THINK_OPEN

FLAG_OFF, FLAG_ON = REASONING_FLAGS
TEMPLATE_CLOSE = "\n</think>\n"  # what our template renders between a trace and its answer
MODEL_CARD_CLOSE = ".\n</think>\n\n"  # the Nemotron Nano 2 model card's forced close


class Split(NamedTuple):
    reasoning: str
    answer: str
    closed: bool  # the text has a ``</think>``


def split(text: str) -> Split:
    """Split at the last ``</think>``: (text before it, text after it, True); (text, "", False) when
    there is none. Only the newlines that separate the parts are stripped."""
    head, sep, tail = text.rpartition(THINK_CLOSE)
    if not sep:
        return Split(text.strip("\n"), "", False)
    return Split(head.strip("\n"), tail.lstrip("\n"), True)


def reasoning_end(text: str) -> int | None:
    """Character offset where the reasoning ends (the last ``</think>``), or None when unclosed."""
    i = text.rfind(THINK_CLOSE)
    return None if i < 0 else i


def opens_trace(prompt: str) -> bool:
    """True if the prompt ends inside a think trace (its last ``<think>`` has no ``</think>`` after it)."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


def close_for(text_so_far: str, close: str | None = None) -> str:
    """The string that closes a trace: ``close`` if given, else the template's separator (without its
    leading newline when the text already ends with one)."""
    if close is not None:
        return close
    return TEMPLATE_CLOSE[1:] if text_so_far.endswith("\n") else TEMPLATE_CLOSE


def flag(mode: str) -> str:
    """The system-turn flag for a mode: ``off`` -> ``/no_think``, anything else -> ``/think``."""
    return FLAG_OFF if mode == "off" else FLAG_ON


def strip_flags(text: str) -> str:
    for f in REASONING_FLAGS:
        text = text.replace(f, "")
    return text
