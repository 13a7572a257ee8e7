"""Tool-calling reward: compare the answer's ``<TOOLCALL>[...]</TOOLCALL>`` JSON list with the expected calls.

* 1.0: same number of calls, same names in the same order, equal ``arguments`` (dict-order-insensitive).
* 0.5: valid JSON list of ``{"name", "arguments"}`` calls whose names match in order but arguments differ.
* 0.0: otherwise (no or repeated tags, invalid JSON, wrong structure, unknown function, wrong names).
* If no call is expected: 1.0 when the answer contains no ``<TOOLCALL>`` at all and is a real text answer
  (``posttrain.rewards._util.is_plausible_prose``), else 0.0; before, any text without the tag passed.

``arguments`` given as a JSON-encoded string (OpenAI style) is decoded before comparison.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from posttrain.rewards._util import is_plausible_prose, load_metadata

TOOLCALL_OPEN = "<TOOLCALL>"
TOOLCALL_CLOSE = "</TOOLCALL>"
_BLOCK = re.compile(re.escape(TOOLCALL_OPEN) + r"(.*?)" + re.escape(TOOLCALL_CLOSE), re.DOTALL)


def _normalize_call(call: Any) -> dict[str, Any] | None:
    """``{"name": str, "arguments": dict}`` or None if malformed (also unwraps OpenAI ``function`` wrapper)."""
    if not isinstance(call, Mapping):
        return None
    if isinstance(call.get("function"), Mapping):
        call = call["function"]
    name, args = call.get("name"), call.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    if not isinstance(name, str) or not isinstance(args, Mapping):
        return None
    return {"name": name, "arguments": dict(args)}


def parse_tool_calls(answer_text: str) -> list[dict[str, Any]] | None:
    """Calls inside the single ``<TOOLCALL>`` block; [] if there is no tag; None if malformed."""
    if TOOLCALL_OPEN not in answer_text and TOOLCALL_CLOSE not in answer_text:
        return []
    blocks = _BLOCK.findall(answer_text)
    if len(blocks) != 1 or answer_text.count(TOOLCALL_OPEN) != 1:
        return None
    try:
        raw = json.loads(blocks[0])
    except json.JSONDecodeError:
        return None
    if not isinstance(raw, list):
        return None
    calls = [_normalize_call(c) for c in raw]
    return None if any(c is None for c in calls) else calls  # type: ignore[return-value]


def same_value(a: Any, b: Any) -> bool:
    """JSON equality: dicts order-insensitive, lists order-sensitive, ``1 == 1.0`` but ``True != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b or (_is_number(a) and _is_number(b) and a == b)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def tool_names(tools: Any) -> set[str] | None:
    """Names declared in JSON tool schemas (``{"name": ...}`` or ``{"function": {"name": ...}}``)."""
    if not tools:
        return None
    names = set()
    for tool in tools:
        if isinstance(tool, Mapping):
            fn = tool.get("function", tool)
            if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
                names.add(fn["name"])
    return names


def score(answer_text: str, metadata: Mapping[str, Any] | str) -> float:
    """1.0 exact calls, 0.5 right function names with wrong arguments, else 0.0 (see module docstring)."""
    meta = load_metadata(metadata)
    if "expected_calls" not in meta:
        raise ValueError("tool_calling metadata needs 'expected_calls'")
    expected = [_normalize_call(c) for c in meta["expected_calls"] or []]
    if any(c is None for c in expected):
        raise ValueError("malformed entry in 'expected_calls'")
    if not expected:
        no_tags = TOOLCALL_OPEN not in answer_text and TOOLCALL_CLOSE not in answer_text
        return 1.0 if no_tags and is_plausible_prose(answer_text) else 0.0
    calls = parse_tool_calls(answer_text)
    if not calls:
        return 0.0
    known = tool_names(meta.get("tools"))
    if known is not None and any(c["name"] not in known for c in calls):
        return 0.0
    if [c["name"] for c in calls] != [c["name"] for c in expected]:  # type: ignore[index]
        return 0.0
    exact = all(same_value(c["arguments"], e["arguments"]) for c, e in zip(calls, expected))  # type: ignore[index]
    return 1.0 if exact else 0.5
