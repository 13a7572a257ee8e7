"""Adapters from common chat formats to the canonical (Nemotron) row, before strict validation.

* ``openai``: ``{"messages": [{role, content, tool_calls?, reasoning_content?}], "tools"?: [...]}``.
* ``sharegpt``: ``{"conversations": [{"from": human|gpt|system|function_call|observation, "value"}]}``.
* ``preference``: ``{"prompt": str | messages, "chosen": str | messages, "rejected": str | messages}``;
  the row becomes prompt + chosen, and ``metadata.rejected`` keeps the rejected turn(s).

``reasoning`` is ``"on"`` when an assistant turn carries reasoning (a ``reasoning_content`` or an
inline ``<think>`` block with text), else ``"off"``. ``uuid`` is a content hash, so re-reading a
file gives the same ids.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid as uuidlib
from typing import Any

from data_recipes.errors import DataError

FORMATS = ("nemotron", "openai", "sharegpt", "preference")
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "observation": "tool",
    "tool": "tool",
    "function_call": "assistant",
}
_THINK_WITH_TEXT = re.compile(r"\A\s*<think>\s*\S", re.DOTALL)


def content_uuid(obj: Any) -> str:
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).digest()
    return str(uuidlib.UUID(bytes=digest[:16]))


def _reasoning_of(messages: list) -> str:
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "assistant":
            if m.get("reasoning_content") or _THINK_WITH_TEXT.match(str(m.get("content") or "")):
                return "on"
    return "off"


def _tools(value: Any, where: str) -> list:
    """A ``tools`` list: given as a list of objects or a JSON string of one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(where, "tools", f"not valid JSON ({e.msg})") from None
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise DataError(where, "tools", "must be a list of tool objects")
    return value


def _wrap(messages: list, row: dict, category: str | None, metadata: dict, where: str) -> dict:
    meta = dict(metadata)
    if row.get("tools"):
        meta["tools"] = _tools(row["tools"], where)
    return {
        "uuid": str(row.get("uuid") or row.get("id") or content_uuid(messages)),
        "license": str(row.get("license") or "unknown"),
        "generator": str(row.get("generator") or row.get("model") or "unknown"),
        "version": str(row.get("version") or "1"),
        "category": row.get("category") or category or "chat",
        "reasoning": row.get("reasoning") or _reasoning_of(messages),
        "messages": messages,
        "metadata": meta,
    }


def _require(row: dict, key: str, where: str) -> Any:
    if key not in row or row[key] is None:
        raise DataError(where, key, "missing required field")
    return row[key]


def _turns(value: Any, role: str, where: str, field: str) -> list:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if not isinstance(value, list):
        raise DataError(where, field, f"must be a string or a list of messages, got {type(value).__name__}")
    return list(value)


def from_openai(row: dict, where: str, category: str | None) -> dict:
    return _wrap(_require(row, "messages", where), row, category, {}, where)


def from_sharegpt(row: dict, where: str, category: str | None) -> dict:
    conv = _require(row, "conversations", where)
    if not isinstance(conv, list):
        raise DataError(where, "conversations", "must be a list")
    messages = []
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict) or turn.get("from") not in _SHAREGPT_ROLES:
            got = turn.get("from") if isinstance(turn, dict) else turn
            raise DataError(where, f"conversations[{i}].from", f"unknown speaker {got!r}")
        role, value = _SHAREGPT_ROLES[turn["from"]], turn.get("value")
        if turn["from"] == "function_call":
            try:
                call = json.loads(value)
            except (TypeError, json.JSONDecodeError):
                raise DataError(
                    where, f"conversations[{i}].value", "function_call is not valid JSON"
                ) from None
            calls = call if isinstance(call, list) else [call]
            messages.append(
                {"role": "assistant", "content": "", "tool_calls": [{"function": c} for c in calls]}
            )
        else:
            messages.append({"role": role, "content": value})
    if row.get("system") and (not messages or messages[0]["role"] != "system"):
        messages.insert(0, {"role": "system", "content": row["system"]})
    return _wrap(messages, row, category, {}, where)


def from_preference(row: dict, where: str, category: str | None) -> dict:
    prompt = _turns(_require(row, "prompt", where), "user", where, "prompt")
    chosen = _turns(_require(row, "chosen", where), "assistant", where, "chosen")
    rejected = _turns(_require(row, "rejected", where), "assistant", where, "rejected")
    return _wrap(prompt + chosen, row, category, {"rejected": rejected}, where)


def adapt(row: Any, fmt: str, where: str, category: str | None) -> Any:
    """Convert ``row`` from ``fmt`` to a raw canonical row (``nemotron`` rows pass through)."""
    if fmt == "nemotron":
        if isinstance(row, dict) and category and not row.get("category"):
            row = {**row, "category": category}
        return row
    if not isinstance(row, dict):
        raise DataError(where, "<row>", f"expected a JSON object, got {type(row).__name__}")
    fn = {"openai": from_openai, "sharegpt": from_sharegpt, "preference": from_preference}.get(fmt)
    if fn is None:
        raise DataError(where, "format", f"unknown source format {fmt!r}; expected one of {list(FORMATS)}")
    return fn(row, where, category)
