"""The canonical sample: NVIDIA's Nemotron-Post-Training-Dataset schema, validated strictly.

A row is ``{uuid, license, generator, version, category, reasoning, messages, metadata}`` with
``reasoning`` in ``{"on", "off"}`` and ``messages`` a list of
``{role, content, reasoning_content?, tool_calls?[{id, type, function{name, arguments}}]}``.

Normalisation (so real Nemotron rows load unchanged and render right with the Nano 2 template):

* ``metadata`` may be a dict, a JSON string (as in v1) or absent (as in v2); it becomes a dict.
* An assistant ``content`` that starts with an inline ``<think>...</think>`` block (v1/v2 style) is
  split into ``reasoning_content`` and the answer. ``reasoning_content`` never carries think tags.
* Broken think structure is rejected, never trained on as-is: an unclosed ``<think>``, a second or
  nested block, a stray ``</think>``, a block that does not open the turn, think tags inside
  ``reasoning_content``, or a ``reasoning_content`` together with an inline block.
* ``tool_calls[].function.arguments`` may be a dict or a JSON string; it becomes a JSON string
  (one Arrow type for every row) and must decode to a JSON object.
* Every message gets exactly the keys ``role, content, reasoning_content, tool_calls``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from data_recipes.errors import DataError

ROLES = ("system", "user", "assistant", "tool")
REQUIRED = ("uuid", "license", "generator", "version", "category", "reasoning", "messages")
MESSAGE_KEYS = {"role", "content", "reasoning_content", "tool_calls", "tool_call_id", "name"}
FLAGS = ("/no_think", "/think")
_INLINE_THINK = re.compile(r"\A\s*<think>\n?(.*?)\n?</think>\s*", re.DOTALL)
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def _has_think(text: str) -> bool:
    return THINK_OPEN in text or THINK_CLOSE in text


def _split_think(content: str, reasoning: str | None, where: str, field: str) -> tuple[str, str | None]:
    """``(content, reasoning)`` of an assistant turn with a well-formed think structure (see module doc).

    An empty ``reasoning_content`` counts as absent, so an inline block next to it is still split off.
    """
    if reasoning:
        if _has_think(reasoning):
            raise DataError(where, f"{field}.reasoning_content", "contains <think>/</think> tags")
        if _has_think(content):
            raise DataError(
                where, f"{field}.content", "has a <think> block and a reasoning_content; give one"
            )
        return content, reasoning
    hit = _INLINE_THINK.match(content)
    if hit:
        inner, rest = hit.group(1), content[hit.end() :]
        if THINK_OPEN in inner:
            raise DataError(where, f"{field}.content", "nested <think> block")
        if THINK_OPEN in rest:
            raise DataError(where, f"{field}.content", "more than one <think> block")
        if THINK_CLOSE in rest:
            raise DataError(where, f"{field}.content", "</think> without a matching <think>")
        return rest, inner
    if THINK_OPEN in content:
        why = (
            "<think> block must open the turn" if THINK_CLOSE in content else "unclosed <think> (no </think>)"
        )
        raise DataError(where, f"{field}.content", why)
    if THINK_CLOSE in content:
        raise DataError(where, f"{field}.content", "</think> without a matching <think>")
    return content, None


def _str(value: Any, where: str, field: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise DataError(where, field, f"expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(where, field, "empty content")
    return value


def _arguments(value: Any, where: str, field: str) -> str:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if not isinstance(value, str):
        raise DataError(
            where, field, f"arguments must be a JSON object or string, got {type(value).__name__}"
        )
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError as e:
        raise DataError(where, field, f"arguments are not valid JSON ({e.msg})") from None
    if not isinstance(decoded, dict):
        raise DataError(where, field, "arguments must decode to a JSON object")
    return value


def _tool_calls(value: Any, where: str, field: str) -> list[dict] | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise DataError(where, field, "tool_calls must be a list")
    calls = []
    for j, tc in enumerate(value):
        f = f"{field}[{j}]"
        if not isinstance(tc, dict):
            raise DataError(where, f, "tool call must be an object")
        fn = tc.get("function", tc)  # accept the flat {"name", "arguments"} form too
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise DataError(where, f"{f}.function.name", "missing tool name")
        args = _arguments(fn.get("arguments", {}), where, f"{f}.function.arguments")
        call_id = tc.get("id") or f"call_{j}"
        calls.append(
            {
                "id": str(call_id),
                "type": tc.get("type") or "function",
                "function": {"name": fn["name"], "arguments": args},
            }
        )
    return calls


def validate_message(m: Any, where: str, field: str) -> dict:
    """One message in canonical form (see the module docstring)."""
    if not isinstance(m, dict):
        raise DataError(where, field, "message must be an object")
    unknown = set(m) - MESSAGE_KEYS
    if unknown:
        raise DataError(where, field, f"unknown message keys {sorted(unknown)}")
    role = m.get("role")
    if role not in ROLES:
        raise DataError(where, f"{field}.role", f"unknown role {role!r}; expected one of {list(ROLES)}")
    content = m.get("content")
    content = "" if content is None and role in ("assistant", "system") else content
    content = _str(content, where, f"{field}.content")
    reasoning = m.get("reasoning_content")
    if reasoning is not None:
        reasoning = _str(reasoning, where, f"{field}.reasoning_content")
    calls = _tool_calls(m.get("tool_calls"), where, f"{field}.tool_calls")
    if calls and role != "assistant":
        raise DataError(where, f"{field}.tool_calls", f"only assistant turns may call tools, not {role}")
    if role == "assistant":
        content, reasoning = _split_think(content, reasoning, where, field)
    if role in ("user", "tool") or (role == "assistant" and not calls):
        _str(content, where, f"{field}.content", allow_empty=False)
    return {"role": role, "content": content, "reasoning_content": reasoning or None, "tool_calls": calls}


def _metadata(value: Any, where: str) -> dict:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(where, "metadata", f"not valid JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise DataError(where, "metadata", f"expected an object, got {type(value).__name__}")
    tools = value.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise DataError(where, "metadata.tools", "must be a list of tool objects")
    return value


def validate_sample(row: Any, where: str) -> dict:
    """Validate a raw row strictly and return it in canonical form; raise ``DataError`` otherwise."""
    if not isinstance(row, dict):
        raise DataError(where, "<row>", f"expected a JSON object, got {type(row).__name__}")
    for key in REQUIRED:
        if key not in row or row[key] is None:
            raise DataError(where, key, "missing required field")
    for key in REQUIRED[:-2]:
        _str(row[key], where, key, allow_empty=key not in ("uuid", "category"))
    if row["reasoning"] not in ("on", "off"):
        raise DataError(where, "reasoning", f"must be 'on' or 'off', got {row['reasoning']!r}")
    msgs = row["messages"]
    if not isinstance(msgs, list) or not msgs:
        raise DataError(where, "messages", "must be a non-empty list")
    out = [validate_message(m, where, f"messages[{i}]") for i, m in enumerate(msgs)]
    roles = [m["role"] for m in out]
    if "system" in roles[1:]:
        raise DataError(
            where, f"messages[{roles.index('system', 1)}].role", "system message only allowed first"
        )
    body = roles[1:] if roles[0] == "system" else roles
    if not body or body[0] != "user":
        first = len(roles) - len(body)
        raise DataError(
            where, f"messages[{first}].role", f"first turn must be user, got {body[0] if body else None!r}"
        )
    if roles[-1] != "assistant":
        raise DataError(where, f"messages[{len(roles) - 1}].role", "last turn must be assistant")
    if row["reasoning"] == "off" and any(m["reasoning_content"] for m in out):
        raise DataError(where, "messages", "reasoning is 'off' but an assistant turn has reasoning_content")
    sample = {k: row[k] for k in REQUIRED[:-1]}
    sample["messages"] = out
    sample["metadata"] = _metadata(row.get("metadata"), where)
    extra = {k: v for k, v in row.items() if k not in REQUIRED and k != "metadata"}
    if extra:
        sample["metadata"].setdefault("extra", extra)
    return sample


def strip_flags(text: str) -> str:
    for flag in FLAGS:
        text = text.replace(flag, "")
    return text.strip()


def with_flag(messages: list[dict], reasoning: str) -> list[dict]:
    """Messages whose system turn carries exactly one flag (``/think`` or ``/no_think``), user flags removed."""
    flag = "/think" if reasoning == "on" else "/no_think"
    msgs = [dict(m) for m in messages]
    for m in msgs:
        if m["role"] == "user" and any(f in m["content"] for f in FLAGS):
            m["content"] = strip_flags(m["content"])
    if msgs[0]["role"] == "system":
        rest = strip_flags(msgs[0]["content"])
        msgs[0]["content"] = f"{flag}\n{rest}" if rest else flag
    else:
        msgs.insert(0, {"role": "system", "content": flag, "reasoning_content": None, "tool_calls": None})
    return msgs


def prompt_end(messages: list[dict]) -> int:
    """Index just past the last user turn: the RL/preference prompt is ``messages[:prompt_end]``."""
    return max(i for i, m in enumerate(messages) if m["role"] == "user") + 1


def prompt_text(sample: dict) -> str:
    """The user turns' text, flags removed (the key for splits, dedup and decontamination)."""
    return "\n".join(strip_flags(m["content"]) for m in sample["messages"] if m["role"] == "user")


def normalise_text(text: str) -> str:
    """Lower-case, alphanumerics only, single spaces: ``"Hello,  World!" -> "hello world"``."""
    return " ".join(re.findall(r"[^\W_]+", text.lower()))
