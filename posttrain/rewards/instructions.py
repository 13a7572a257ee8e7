"""Instruction-following (IFEval-style) reward: IFEval's *prompt-level strict* accuracy of a real answer.

``score`` is 1.0 only when all of these hold, else 0.0:

1. the answer is plausible English prose (``posttrain.rewards._util.is_plausible_prose``: enough
   English-looking words, function words, a finished sentence, no think/tool tags), so random tokens fail
   even when they happen to meet every constraint (no commas, no forbidden word, short enough, ...);
2. if ``metadata["topic"]`` is given, the answer mentions it (``on_topic``); the generated chat data carries
   its topic (rows from other sources may not, and are then checked without it);
3. every constraint in ``metadata["constraints"]`` holds (``check``), on the answer as given (strict: no
   stripping of markdown or first/last lines, unlike IFEval's "loose" variant).

Each constraint is ``{"kind": ..., "value": ...}``; kinds and who checks them:

* ``max_words`` (int): lm-eval ``length_constraints:number_words``, ``less than`` value + 1 (``\\w+`` words);
* ``min_words`` (int): lm-eval ``length_constraints:number_words``, ``at least`` value (``\\w+`` words);
* ``lowercase``: lm-eval ``change_case:english_lowercase`` (``str.islower()`` and langdetect says English);
* ``uppercase``: ours, ``str.isupper()``. IFEval's ``change_case:english_capital`` also asks langdetect for
  English, and langdetect reads all-caps English as German (it rejected 62 of 335 all-caps references);
* ``include_keywords`` (list of str): lm-eval ``keywords:existence`` (case-insensitive, anywhere);
* ``exclude_keywords`` (list of str): lm-eval ``keywords:forbidden_words`` (case-insensitive, whole words);
* ``start_with`` (str): ours (IFEval has no start checker): case-insensitive prefix, whitespace ignored;
* ``end_with`` (str): lm-eval ``startend:end_checker`` (case-insensitive suffix, whitespace/quotes ignored);
* ``num_bullets`` (int): lm-eval ``detectable_format:number_bullet_lists`` (exact count of lines starting
  with ``-`` or with ``*`` not followed by another ``*``);
* ``no_commas``: lm-eval ``punctuation:no_comma``.

Keywords are matched literally (``re.escape``; lm-eval itself reads them as regexes). Unknown kinds and
missing values raise ``ValueError``. ``instruction_level`` gives IFEval's instruction-level fraction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from posttrain.rewards import ifeval
from posttrain.rewards._util import FUNCTION_WORDS, is_plausible_prose, load_metadata


def _keywords(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"keyword constraint needs a non-empty list of strings, got {value!r}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"constraint value must be an integer, got {value!r}")
    return int(value)


def _words(n: int, relation: str) -> dict[str, Any]:
    return {"num_words": n, "relation": relation}


# kind -> (lm-eval instruction id, kwargs of its build_description from our value)
IFEVAL: dict[str, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    "max_words": ("length_constraints:number_words", lambda v: _words(_int(v) + 1, "less than")),
    "min_words": ("length_constraints:number_words", lambda v: _words(_int(v), "at least")),
    "lowercase": ("change_case:english_lowercase", lambda v: {}),
    "include_keywords": ("keywords:existence", lambda v: {"keywords": [re.escape(k) for k in _keywords(v)]}),
    "exclude_keywords": (
        "keywords:forbidden_words",
        lambda v: {"forbidden_words": [re.escape(k) for k in _keywords(v)]},
    ),
    "end_with": ("startend:end_checker", lambda v: {"end_phrase": str(v)}),
    "num_bullets": ("detectable_format:number_bullet_lists", lambda v: {"num_bullets": _int(v)}),
    "no_commas": ("punctuation:no_comma", lambda v: {}),
}
OWN: dict[str, Callable[[str, Any], bool]] = {
    "uppercase": lambda t, v: t.isupper(),
    "start_with": lambda t, v: t.strip().lower().startswith(str(v).strip().lower()),
}
KINDS = frozenset(IFEVAL) | frozenset(OWN)
NEEDS_VALUE = frozenset(
    {
        "max_words",
        "min_words",
        "include_keywords",
        "exclude_keywords",
        "start_with",
        "end_with",
        "num_bullets",
    }
)


def _validated(constraint: Any) -> tuple[str, Any]:
    if not isinstance(constraint, Mapping):
        raise ValueError(f"instruction constraint must be a dict, got {constraint!r}")
    kind, value = constraint.get("kind"), constraint.get("value")
    if kind not in KINDS:
        raise ValueError(f"unknown instruction constraint kind: {kind!r}")
    if kind in NEEDS_VALUE and (value is None or value == ""):
        raise ValueError(f"constraint {kind!r} needs a 'value'")
    if kind in IFEVAL:
        IFEVAL[kind][1](value)  # raises on a malformed value
    return kind, value


def check(text: str, constraint: Mapping[str, Any]) -> bool:
    """Whether ``text`` meets one constraint (lm-eval's checker where one exists, see module docstring)."""
    kind, value = _validated(constraint)
    if kind in OWN:
        return bool(OWN[kind](text, value))
    instruction_id, kwargs = IFEVAL[kind]
    return ifeval.follows(instruction_id, text, **kwargs(value))


def on_topic(text: str, topic: str) -> bool:
    """Whether ``text`` names the topic: some word of it (3+ letters, not a function word such as "the"),
    with a final ``s`` dropped, appears as a whole word, case-insensitively, optionally plus ``s``/``es``
    (topic "bees" matches "bee" and "Bees"; "the ocean" matches "oceans")."""
    words = [w for w in re.findall(r"[A-Za-z]{3,}", topic) if w.lower() not in FUNCTION_WORDS]
    if not words:
        raise ValueError(f"chat metadata 'topic' has no content word: {topic!r}")
    stems = [w[:-1] if w.lower().endswith("s") and len(w) > 3 else w for w in words]
    return any(re.search(rf"\b{re.escape(w)}(?:e?s)?\b", text, re.IGNORECASE) for w in stems)


def _constraints(meta: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    constraints = meta.get("constraints")
    if not isinstance(constraints, list) or not constraints:
        raise ValueError("chat metadata needs a non-empty 'constraints' list")
    for c in constraints:
        _validated(c)
    topic = meta.get("topic")
    if topic is not None and not isinstance(topic, str):
        raise ValueError(f"chat metadata 'topic' must be a string, got {topic!r}")
    return constraints


def instruction_level(answer_text: str, metadata: Mapping[str, Any] | str) -> float:
    """IFEval's instruction-level strict accuracy: the fraction of constraints met (no prose/topic gate)."""
    constraints = _constraints(load_metadata(metadata))
    return sum(check(answer_text, c) for c in constraints) / len(constraints)


def score(answer_text: str, metadata: Mapping[str, Any] | str) -> float:
    """1.0 if the answer is real prose, on topic (when given) and meets every constraint, else 0.0."""
    meta = load_metadata(metadata)
    constraints = _constraints(meta)
    if not is_plausible_prose(answer_text):
        return 0.0
    if "topic" in meta and not on_topic(answer_text, meta["topic"]):
        return 0.0
    return 1.0 if all(check(answer_text, c) for c in constraints) else 0.0
