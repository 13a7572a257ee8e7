"""The Nano 2 chat template in plain Python, for the templates it is proven to equal.

A data build renders every row once to count its tokens; the sandboxed Jinja template costs about
0.25 ms a row, this renderer a tenth of that. It is used only for a tokenizer whose
``chat_template`` is byte-equal (by SHA-256) to one of the known renderings of posttrain's
``chat_template.jinja`` (``posttrain.models.template.render_template`` with the Nano 2, ChatML or
Llama 3 turn markers): any other template, a user's own included, goes through Jinja. A message
shape the renderer does not cover (a non-string content, an unknown role, a malformed tool call)
makes it return ``None`` and the caller renders that row with Jinja, which also raises the errors.

``tests/unit/test_data_render_python.py`` checks the hashes against posttrain's templates and the
text against ``apply_chat_template`` on every row of real builds and on generated messages.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable

from data_recipes.schema import THINK_CLOSE, THINK_OPEN

# (system opener, user opener, assistant opener, end of turn) by SHA-256 of the rendered template.
KNOWN: dict[str, tuple[str, str, str, str]] = {
    "24ce3b4fa3381f7a814a6493cbedf9762bb6ef4bd86ff29c68afba439109c7e0": (
        "<SPECIAL_10>System\n",
        "<SPECIAL_11>User\n",
        "<SPECIAL_11>Assistant\n",
        "<SPECIAL_12>",
    ),
    "a5780aa99370ddd50603686834c2cdb07305451bcc5570027e4a783b191d0f15": (
        "<|im_start|>system\n",
        "<|im_start|>user\n",
        "<|im_start|>assistant\n",
        "<|im_end|>",
    ),
    "208f79dd5da6aa6f263c042a35e7256502bd892d09ec9a2b891dc77cc637a4ce": (
        "<|start_header_id|>system<|end_header_id|>\n\n",
        "<|start_header_id|>user<|end_header_id|>\n\n",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|eot_id|>",
    ),
}
# The names transformers reads a message's reasoning from, first non-None wins (``_alias_reasoning_fields``).
_REASONING = ("reasoning_content", "thinking", "reasoning")


class _Unsupported(Exception):
    """A message shape the Python renderer does not cover: render it with Jinja."""


def _text(value) -> str:
    """``value or ''`` as the template reads it, for a string or None only."""
    if value is None:
        return ""
    if type(value) is not str:
        raise _Unsupported
    return value


def _flag(text: str, think: bool) -> bool:
    """Reasoning after ``text``: the last of ``/think`` and ``/no_think`` wins, none keeps ``think``."""
    on, off = text.rfind("/think"), text.rfind("/no_think")
    return True if on > off else False if off > on else think


def _unflagged(text: str) -> str:
    return text.replace("/no_think", "").replace("/think", "").strip()


def _tool_calls(calls) -> str:
    """The ``<TOOLCALL>[...]</TOOLCALL>`` block of an assistant turn ('' for none)."""
    if not calls:
        return ""
    if type(calls) is not list:
        raise _Unsupported
    parts = []
    for tc in calls:
        if type(tc) is not dict:
            raise _Unsupported
        f = tc["function"] if "function" in tc else tc
        if type(f) is not dict or "name" not in f or "arguments" not in f:
            raise _Unsupported
        args = f["arguments"]
        if isinstance(args, str) and type(args) is not str:
            raise _Unsupported
        args = args if type(args) is str else json.dumps(args, ensure_ascii=False)
        parts.append(f'{{"name": {json.dumps(f["name"], ensure_ascii=False)}, "arguments": {args}}}')
    return "<TOOLCALL>[" + ", ".join(parts) + "]</TOOLCALL>"


def _reasoning(m: dict):
    """The message's reasoning as the template sees it after transformers' aliasing."""
    for key in _REASONING:
        if m.get(key) is not None:
            return m[key]
    return m.get("reasoning_content")


def render_nano2(markers: tuple[str, str, str, str], messages: list, tools) -> str:
    """The text the Nano 2 template renders (no generation prompt); raises ``_Unsupported`` for other shapes."""
    system, user, assistant, end = markers
    if type(messages) is not list or any(type(m) is not dict for m in messages):
        raise _Unsupported
    if messages and messages[0].get("role") == "system":
        sys, rest = _text(messages[0].get("content")), messages[1:]
    else:
        sys, rest = "", messages
    think = _flag(sys, True)
    head = _unflagged(sys)
    out = [system, head]
    if tools:
        out += [
            "\n" if head else "",
            "<AVAILABLE_TOOLS>",
            json.dumps(tools, ensure_ascii=False),
            "</AVAILABLE_TOOLS>",
        ]
    out.append(end + "\n")
    for m in rest:
        role = m.get("role")
        if role == "user":
            text = _text(m.get("content"))
            think = _flag(text, think)
            out += [user, _unflagged(text), end, "\n"]
        elif role == "tool":
            out += [user, "<TOOL_RESPONSE>", _text(m.get("content")), "</TOOL_RESPONSE>", end, "\n"]
        elif role == "assistant":
            out.append(assistant)
            if think:
                trace = _reasoning(m)
                if trace is not None and type(trace) is not str:
                    raise _Unsupported
                out += [THINK_OPEN, "\n", trace + "\n" if trace else "", THINK_CLOSE, "\n"]
            else:
                out += [THINK_OPEN, THINK_CLOSE]
            out += [_text(m.get("content")), _tool_calls(m.get("tool_calls")), end, "\n"]
        else:
            raise _Unsupported
    return "".join(out)


def python_renderer(template) -> Callable[[list, list | None], str | None] | None:
    """A ``(messages, tools) -> text or None`` renderer when ``template`` is a known one, else None."""
    return _known(template) if isinstance(template, str) else None


@functools.lru_cache(maxsize=16)
def _known(template: str) -> Callable[[list, list | None], str | None] | None:
    markers = KNOWN.get(hashlib.sha256(template.encode()).hexdigest())
    if markers is None:
        return None

    def render(messages: list, tools: list | None) -> str | None:
        try:
            return render_nano2(markers, messages, tools)
        except Exception:  # noqa: BLE001 - _Unsupported or a bad value: Jinja renders (or rejects) it
            return None

    return render
