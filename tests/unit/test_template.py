"""The Nano 2 chat template: flags, think blocks, tools, generation masks, prefix property."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

SYS, USR, AST, END = "<SPECIAL_10>System\n", "<SPECIAL_11>User\n", "<SPECIAL_11>Assistant\n", "<SPECIAL_12>"


def render(tok, msgs, **kw):
    return tok.apply_chat_template(msgs, tokenize=False, **kw)


def test_reasoning_on_by_default(tokenizer):
    msgs = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "add"},
    ]
    assert render(tokenizer, msgs) == f"{SYS}{END}\n{USR}2+2?{END}\n{AST}<think>\nadd\n</think>\n4{END}\n"
    assert render(tokenizer, msgs[:1], add_generation_prompt=True).endswith(f"{AST}<think>\n")


def test_reasoning_off_has_empty_think_block(tokenizer):
    msgs = [
        {"role": "system", "content": "Be brief. /no_think"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    out = render(tokenizer, msgs)
    assert out == f"{SYS}Be brief.{END}\n{USR}2+2?{END}\n{AST}<think></think>4{END}\n"
    assert render(tokenizer, msgs[:2], add_generation_prompt=True).endswith(f"{AST}<think></think>")


def test_flag_inside_user_message_is_stripped(tokenizer):
    out = render(
        tokenizer, [{"role": "user", "content": "What is 2+2? /no_think"}], add_generation_prompt=True
    )
    assert "/no_think" not in out and f"{USR}What is 2+2?{END}" in out and out.endswith("<think></think>")


@pytest.mark.parametrize(
    "system,user,on",
    [
        ("/think", "/no_think q", False),
        ("/no_think", "q /think", True),
        ("", "/no_think q /think", True),
        ("", "/think q /no_think", False),
        ("/no_think", "q", False),
        ("", "q", True),
    ],
)
def test_last_flag_wins(tokenizer, system, user, on):
    out = render(
        tokenizer,
        [{"role": "system", "content": system}, {"role": "user", "content": user}],
        add_generation_prompt=True,
    )
    assert out.endswith("<think>\n") if on else out.endswith("<think></think>")
    body = out.replace("</think>", "")
    assert "/think" not in body and "/no_think" not in body


def test_tool_call_and_response(tokenizer):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    msgs = [
        {"role": "user", "content": "Weather in Paris? /no_think"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"temp": 21}'},
        {"role": "assistant", "content": "21 degrees."},
    ]
    out = render(tokenizer, msgs, tools=tools)
    assert f"<AVAILABLE_TOOLS>{json.dumps(tools)}</AVAILABLE_TOOLS>{END}" in out
    assert (
        f'{AST}<think></think><TOOLCALL>[{{"name": "get_weather", "arguments": {{"city": "Paris"}}}}]</TOOLCALL>{END}'
        in out
    )
    assert f'{USR}<TOOL_RESPONSE>{{"temp": 21}}</TOOL_RESPONSE>{END}' in out
    # dict arguments render the same JSON as string arguments
    msgs[1]["tool_calls"][0]["function"]["arguments"] = {"city": "Paris"}
    assert render(tokenizer, msgs, tools=tools) == out


def _assistant_text(tok, msgs):
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    return tok.decode([i for i, m in zip(ids, mask) if m]), tok.decode(
        [i for i, m in zip(ids, mask) if not m]
    )


texts = (
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="<>/\r"), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
)


@settings(max_examples=40, deadline=None)
@given(user=texts, reasoning=texts, answer=texts, on=st.booleans())
def test_assistant_mask_covers_exactly_assistant_tokens(tokenizer, user, reasoning, answer, on):
    msgs = [
        {"role": "system", "content": "/think" if on else "/no_think"},
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer, "reasoning_content": reasoning if on else None},
    ]
    masked, unmasked = _assistant_text(tokenizer, msgs)
    expected = (f"{reasoning}\n</think>\n" if on else "") + answer + END
    assert masked == expected
    assert unmasked.split(AST)[-1] == ("<think>\n" if on else "<think></think>") + "\n"
    prompt = render(tokenizer, msgs[:2], add_generation_prompt=True)
    assert render(tokenizer, msgs).startswith(prompt)  # prefix property TRL relies on
