"""Small helpers shared by the reward modules: metadata loading, clipping and the "real answer" gate."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any


def load_metadata(metadata: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """Return verifier metadata as a dict; accepts a dict or its JSON encoding (as stored in datasets).

    Top-level ``None`` values are dropped: Arrow struct columns give every row every key of the column.
    """
    if metadata is None:
        return {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata) if metadata.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"metadata is not valid JSON: {e}") from e
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict or a JSON object string, got {type(metadata).__name__}")
    return {k: v for k, v in metadata.items() if v is not None}


# ------------------------------------------------------------------------------------- plausible prose
MIN_WORDS = 5
MIN_CLEAN_SHARE = 0.85
MIN_LETTER_SHARE = 0.6
MIN_FUNCTION_SHARE = 0.15
MAX_WORD_LETTERS = 15
FUNCTION_WORDS = frozenset(
    "a an the this that these those it its they them their we our you your he she his her i me my us "
    "is are was were be been being am do does did have has had can could will would shall should may might "
    "must not no of to in on at by for from with about into onto over under after before between through "
    "and or but if so as than then there here when where what which who how why all any each some more "
    "most very also just only one two".split()
)
_TAGS = re.compile(r"</?(?:think|TOOLCALL|TOOL_RESPONSE|AVAILABLE_TOOLS)>", re.IGNORECASE)
_CODE = re.compile(r"\s*(?:```.*?```|`[^`\n]*`)", re.DOTALL)
_BULLET = re.compile(r"^[ \t]*(?:[-*+]|\d{1,2}[.)])[ \t]+", re.MULTILINE)
_OPEN, _CLOSE = r"[\"'(\[*_]*", r"[\"')\]*_]*[.,;:!?]*[\"')\]*_]*"
_WORD = re.compile(_OPEN + r"([A-Za-z]+(?:['\u2019-][A-Za-z]+)*)" + _CLOSE)
_NUMBER = re.compile(_OPEN + r"[-+$]?\d+(?:[.,:/]\d+)*%?" + _CLOSE)
_VOWEL = re.compile(r"[aeiouy]", re.IGNORECASE)
_CONSONANTS = re.compile(r"[b-df-hj-np-tv-xz]{5}", re.IGNORECASE)
_PUNCT = re.compile(r"[^\w\s]{1,3}")


def _clean_word(token: str) -> str | None:
    """The word in ``token`` if it is one English-looking word with punctuation around it, else None.

    English-looking: ASCII letters (inner ``'`` or ``-`` allowed), one casing (``cat``, ``Cat``, ``CAT``),
    at least one vowel (a, e, i, o, u, y), no run of five consonants and at most ``MAX_WORD_LETTERS`` letters.
    """
    m = _WORD.fullmatch(token)
    if not m:
        return None
    word = m.group(1)
    letters = re.sub(r"[^A-Za-z]", "", word)
    cased = letters.islower() or letters.isupper() or (letters[0].isupper() and letters[1:].islower())
    ok = (
        cased
        and _VOWEL.search(letters)
        and not _CONSONANTS.search(letters)
        and len(letters) <= MAX_WORD_LETTERS
    )
    return word if ok else None


def prose_problems(text: str, min_words: int = MIN_WORDS) -> list[str]:
    """Why ``text`` is not plausible English prose ([] when it is); see ``is_plausible_prose``."""
    if _TAGS.search(text):
        return ["contains think/tool tags"]
    prose = _BULLET.sub("", _CODE.sub("", text))
    tokens = [t for t in prose.split() if not _PUNCT.fullmatch(t)]  # a lone dash or "&" is neutral
    if not tokens:
        return ["no words outside code spans"]
    words: list[str] = []
    n_clean, ends_sentence = 0, False
    for token in tokens:
        word = _clean_word(token)
        if word is not None:
            words.append(word.lower())
        if word is not None or _NUMBER.fullmatch(token):
            n_clean += 1
            ends_sentence = ends_sentence or token.rstrip("\"')]*_").endswith((".", "!", "?"))
    problems = []
    if n_clean / len(tokens) < MIN_CLEAN_SHARE:
        problems.append(f"only {n_clean}/{len(tokens)} tokens are words or numbers")
    chars = [c for c in prose if not c.isspace()]
    letters = sum(c.isascii() and c.isalpha() for c in chars)
    if letters / len(chars) < MIN_LETTER_SHARE:
        problems.append(f"only {letters}/{len(chars)} characters are ASCII letters")
    if len(words) < min_words or len(set(words)) < min(3, min_words):
        problems.append(f"{len(words)} words ({len(set(words))} distinct), need {min_words}")
    n_function = sum(w in FUNCTION_WORDS for w in words)
    if n_function < MIN_FUNCTION_SHARE * len(words) or n_function == len(words):
        problems.append(f"{n_function}/{len(words)} function words (the, is, of, ...): not English-like")
    if not ends_sentence:
        problems.append("no sentence ends with . ! or ?")
    return problems


def is_plausible_prose(text: str, min_words: int = MIN_WORDS) -> bool:
    """Whether ``text`` reads like an English answer rather than random tokens. All must hold:

    * no ``<think>``/``</think>`` or tool tags (``<TOOLCALL>``, ``<TOOL_RESPONSE>``, ``<AVAILABLE_TOOLS>``);
    * after dropping code (backtick spans and fenced blocks, with the whitespace before them) and list
      markers (``-``, ``*``, ``+``, ``1.``), at least ``MIN_CLEAN_SHARE`` of the whitespace tokens (lone
      punctuation such as ``-`` or ``&`` aside) are English-looking words (``_clean_word``) or numbers,
      and at least ``MIN_LETTER_SHARE`` of the non-space characters are ASCII letters;
    * at least ``min_words`` such words, at least ``min(3, min_words)`` of them distinct;
    * at least ``MIN_FUNCTION_SHARE`` of the words are function words (``FUNCTION_WORDS``: the, is, of, ...;
      English prose has 40-50 %, token salad far fewer), and not all of them are;
    * at least one word or number ends a sentence (``.``, ``!`` or ``?``).

    This rejects byte/character noise, code- or markup-like token salad and fragments. It cannot tell a
    grammatical answer from a shuffle of real English words; the domain checks have to do that.
    """
    return not prose_problems(text, min_words)
