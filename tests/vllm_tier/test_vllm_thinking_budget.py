"""vLLM's native ``thinking_token_budget`` (one call: after the budget the server forces our template's
close, ``VLLMServer(reasoning=True)``) against the model card's two-call client, on the same server and
prompts, greedy. Two measured differences, both pinned here:
- vLLM counts the prompt's tokens after ``<think>`` (our template's ``\\n``) as thinking, so its budget B
  equals the two-call budget B - 1 on these prompts;
- its ``max_tokens`` includes the forced close, the two-call path's does not, so its text is a prefix of
  the two-call text (shorter by the close's tokens), except where the trace ends inside a multi-byte
  character: the two-call path continues from text (U+FFFD re-tokenised), vLLM from the token ids."""

from __future__ import annotations

import pytest

from posttrain.inference.generate import render_prompts
from posttrain.inference.vllm_server import complete, generate_budgeted_http
from posttrain.reasoning import FLAG_ON, THINK_CLOSE, THINK_OPEN, split

QUESTIONS = [
    "Calculate 12 + 7.",
    "Write a haiku about rain.",
    "What is the capital of France?",
    "Sort 3, 1, 2.",
]


@pytest.mark.parametrize("budget", [4, 8])
def test_native_budget_equals_the_two_call_client(server, tiny, budget):
    _, tok = tiny
    chats = [[{"role": "system", "content": FLAG_ON}, {"role": "user", "content": q}] for q in QUESTIONS]
    texts = render_prompts(tok, chats)
    in_prompt = {len(tok(t.rsplit(THINK_OPEN, 1)[1], add_special_tokens=False)["input_ids"]) for t in texts}
    assert in_prompt == {1}  # the "\n" our template puts after <think>
    native = complete(server.url, "tiny", texts, max_tokens=32, thinking_token_budget=budget)
    two = generate_budgeted_http(server.url, "tiny", tok, texts, budget=budget - 1, max_tokens=32)
    close_ids = tok(THINK_CLOSE, add_special_tokens=False)["input_ids"]
    compared = 0
    for n, t in zip(native, two):
        trace, answer, closed = split(n.text)
        assert closed and n.text.count(THINK_CLOSE) == 1 and answer.strip(), n.text
        assert n.ids.index(close_ids[0]) - 1 == budget - 1  # trace tokens, then "\n</think>"
        assert t.forced_close and t.thinking_tokens == budget - 1
        if "\ufffd" in trace:
            continue
        assert t.text.startswith(n.text) and len(t.text) > len(n.text), (n.text, t.text)
        compared += 1
    assert compared >= len(texts) // 2
