"""Malformed records for the data tests: ``id -> (format, record, field, reason fragment)``.

A record is a dict (written as one JSON line) or a raw string (written verbatim). ``good(fmt, i)``
gives distinct valid rows of each format to put around it.
"""

from __future__ import annotations

import copy
import json


def good(fmt: str, i: int) -> dict:
    q, a = f"Say hello number {i}.", f"Hello {i}."
    if fmt == "openai":
        return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
    if fmt == "sharegpt":
        return {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
    if fmt == "preference":
        return {"prompt": q, "chosen": a, "rejected": f"Bye {i}."}
    return {
        "uuid": f"good-{i}",
        "license": "cc-by-4.0",
        "generator": "hand",
        "version": "1",
        "category": "chat",
        "reasoning": "on",
        "metadata": {},
        "messages": [
            {"role": "system", "content": ""},
            {"role": "user", "content": q},
            {"role": "assistant", "content": a, "reasoning_content": "A greeting."},
        ],
    }


def _row(**top) -> dict:
    row = good("nemotron", 2)
    row.update(top)
    return {k: v for k, v in row.items() if v is not _DROP}


def _msg(i: int, **fields) -> dict:
    row = good("nemotron", 2)
    m = row["messages"][i]
    m.update(fields)
    row["messages"][i] = {k: v for k, v in m.items() if v is not _DROP}
    return row


def _msgs(*msgs) -> dict:
    return _row(messages=list(msgs))


def _calls(calls) -> dict:
    return _msgs(SYS, USER, {"role": "assistant", "content": "", "tool_calls": calls}, TOOL, ANSWER)


_DROP = object()
SYS, USER = {"role": "system", "content": ""}, {"role": "user", "content": "Weather in Paris?"}
TOOL, ANSWER = {"role": "tool", "content": "18"}, {"role": "assistant", "content": "It is 18."}
CALL = {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
A = 2  # index of the assistant turn in good("nemotron", i)
OA = {"role": "user", "content": "hi"}

NEMOTRON = {
    "row_is_array": ("[1, 2]", "<row>", "expected a JSON object, got list"),
    "row_is_string": ('"hello"', "<row>", "expected a JSON object, got str"),
    "missing_uuid": (_row(uuid=_DROP), "uuid", "missing required field"),
    "empty_uuid": (_row(uuid=""), "uuid", "empty content"),
    "uuid_is_int": (_row(uuid=7), "uuid", "expected a string, got int"),
    "missing_category": (_row(category=_DROP), "category", "missing required field"),
    "license_is_list": (_row(license=["mit"]), "license", "expected a string, got list"),
    "reasoning_null": (_row(reasoning=None), "reasoning", "missing required field"),
    "reasoning_bool": (_row(reasoning=True), "reasoning", "must be 'on' or 'off'"),
    "messages_is_string": (_row(messages="hi"), "messages", "must be a non-empty list"),
    "messages_empty": (_row(messages=[]), "messages", "must be a non-empty list"),
    "message_not_object": (_msgs(SYS, "hi", ANSWER), "messages[1]", "message must be an object"),
    "unknown_message_key": (_msg(A, score=1), "messages[2]", "unknown message keys ['score']"),
    "missing_role": (_msg(1, role=_DROP), "messages[1].role", "unknown role None"),
    "content_is_int": (_msg(1, content=5), "messages[1].content", "expected a string, got int"),
    "user_content_null": (_msg(1, content=None), "messages[1].content", "expected a string, got NoneType"),
    "user_whitespace": (_msg(1, content=" \n\t"), "messages[1].content", "empty content"),
    "assistant_empty": (_msg(A, content=""), "messages[2].content", "empty content"),
    "system_not_first": (_msgs(USER, SYS, ANSWER), "messages[1].role", "system message only allowed first"),
    "ends_with_user": (_msgs(SYS, USER, ANSWER, USER), "messages[3].role", "last turn must be assistant"),
    "first_turn_tool": (_msgs(SYS, TOOL, ANSWER), "messages[1].role", "first turn must be user"),
    "user_calls_tools": (_msg(1, tool_calls=[CALL]), "messages[1].tool_calls", "only assistant turns"),
    "tool_calls_not_list": (_calls({"name": "x"}), "messages[2].tool_calls", "must be a list"),
    "tool_call_not_object": (_calls(["get_weather"]), "messages[2].tool_calls[0]", "must be an object"),
    "tool_call_no_name": (
        _calls([{"function": {"arguments": "{}"}}]),
        "messages[2].tool_calls[0].function.name",
        "missing tool name",
    ),
    "arguments_is_list": (
        _calls([{"function": {"name": "f", "arguments": [1]}}]),
        "messages[2].tool_calls[0].function.arguments",
        "must be a JSON object or string, got list",
    ),
    "arguments_decode_to_array": (
        _calls([{"function": {"name": "f", "arguments": "[1]"}}]),
        "messages[2].tool_calls[0].function.arguments",
        "must decode to a JSON object",
    ),
    "reasoning_off_with_trace": (_row(reasoning="off"), "messages", "reasoning is 'off' but"),
    "reasoning_content_int": (_msg(A, reasoning_content=3), "messages[2].reasoning_content", "got int"),
    "metadata_bad_json": (_row(metadata="{oops"), "metadata", "not valid JSON"),
    "metadata_is_list": (_row(metadata=[1]), "metadata", "expected an object, got list"),
    "metadata_tools_not_list": (
        _row(metadata={"tools": "get_weather"}),
        "metadata.tools",
        "list of tool objects",
    ),
    # broken think structure: rejected, never trained on as-is
    "think_unclosed": (
        _msg(A, content="<think>\nhmm\nHello.", reasoning_content=None),
        "messages[2].content",
        "unclosed <think>",
    ),
    "think_twice": (
        _msg(A, content="<think>a</think><think>b</think>Hi.", reasoning_content=None),
        "messages[2].content",
        "more than one <think> block",
    ),
    "think_nested": (
        _msg(A, content="<think>a<think>b</think>c</think>Hi.", reasoning_content=None),
        "messages[2].content",
        "nested <think> block",
    ),
    "think_stray_close": (
        _msg(A, content="Hello.</think>", reasoning_content=None),
        "messages[2].content",
        "</think> without a matching <think>",
    ),
    "think_close_after_block": (
        _msg(A, content="<think>a</think>Hi.</think>", reasoning_content=None),
        "messages[2].content",
        "</think> without a matching <think>",
    ),
    "think_not_first": (
        _msg(A, content="Hi. <think>a</think>", reasoning_content=None),
        "messages[2].content",
        "<think> block must open the turn",
    ),
    "think_tags_in_reasoning_content": (
        _msg(A, reasoning_content="<think>a</think>"),
        "messages[2].reasoning_content",
        "contains <think>",
    ),
    "think_inline_and_reasoning_content": (
        _msg(A, content="<think>a</think>Hi."),
        "messages[2].content",
        "and a reasoning_content",
    ),
    # JSON-level
    "json_truncated": ('{"uuid": "x", "messages": [', "<json>", "invalid JSON"),
    "json_trailing_garbage": ('{"uuid": "x"} trailing', "<json>", "Extra data"),
    "json_nan": (json.dumps(_row(metadata={"score": float("nan")})), "<json>", "NaN is not valid JSON"),
    "json_lone_surrogate": (
        json.dumps(_msg(1, content="bad \ud800 text")),
        "<json>",
        "lone UTF-16 surrogate",
    ),
    "json_nested_too_deep": ("[" * 100_000 + "]" * 100_000, "<json>", "nested too deeply"),
}

OTHER = {
    "openai_missing_messages": ("openai", {"conversation": []}, "messages", "missing required field"),
    "openai_tools_bad_json": ("openai", {**good("openai", 2), "tools": "[{"}, "tools", "not valid JSON"),
    "openai_tools_object": ("openai", {**good("openai", 2), "tools": {"name": "f"}}, "tools", "list of tool"),
    "openai_think_unclosed": (
        "openai",
        {"messages": [OA, {"role": "assistant", "content": "<think>x"}]},
        "messages[1].content",
        "unclosed <think>",
    ),
    "sharegpt_not_list": ("sharegpt", {"conversations": "hi"}, "conversations", "must be a list"),
    "sharegpt_unknown_speaker": (
        "sharegpt",
        {"conversations": [{"from": "bot", "value": "x"}]},
        "conversations[0].from",
        "unknown speaker",
    ),
    "sharegpt_turn_is_string": ("sharegpt", {"conversations": ["hi"]}, "conversations[0].from", "'hi'"),
    "sharegpt_bad_function_call": (
        "sharegpt",
        {"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "{"}]},
        "conversations[1].value",
        "function_call is not valid JSON",
    ),
    "preference_missing_rejected": (
        "preference",
        {"prompt": "q", "chosen": "a"},
        "rejected",
        "missing required",
    ),
    "preference_prompt_is_int": (
        "preference",
        {"prompt": 3, "chosen": "a", "rejected": "b"},
        "prompt",
        "must be a string or a list of messages, got int",
    ),
    "preference_rejected_empty": (
        "preference",
        {"prompt": "q", "chosen": "a", "rejected": []},
        "rejected",
        "must be a non-empty list",
    ),
    "preference_rejected_ends_with_user": (
        "preference",
        {"prompt": "q", "chosen": "a", "rejected": [{"role": "user", "content": "b"}]},
        "rejected[0].role",
        "last rejected turn must be assistant",
    ),
    "preference_rejected_think_unclosed": (
        "preference",
        {"prompt": "q", "chosen": "a", "rejected": "<think>b"},
        "rejected[0].content",
        "unclosed <think>",
    ),
    "preference_chosen_empty": (
        "preference",
        {"prompt": "q", "chosen": " ", "rejected": "b"},
        "messages[1].content",
        "empty content",
    ),
}

CASES = {k: ("nemotron", *v) for k, v in NEMOTRON.items()} | OTHER


def line(record) -> str:
    return record if isinstance(record, str) else json.dumps(copy.deepcopy(record))
