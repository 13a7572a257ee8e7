"""Against a real vLLM server: greedy text equals HF ``generate``, the budgeted path equals the
in-process one, and the model card's two-call client keeps its budget with exactly one ``</think>``."""

from __future__ import annotations

import pytest

from posttrain.inference.budget import generate_budgeted
from posttrain.inference.client import ThinkingBudgetClient
from posttrain.inference.generate import render_prompts
from posttrain.inference.vllm_server import complete, generate_budgeted_http
from posttrain.reasoning import FLAG_OFF, FLAG_ON, THINK_CLOSE

QUESTIONS = [
    "Calculate 12 + 7.",
    "Write a haiku about rain.",
    "What is the capital of France?",
    "Sort 3, 1, 2.",
]


def prompts(tok, flag: str) -> list[str]:
    return render_prompts(
        tok, [[{"role": "system", "content": flag}, {"role": "user", "content": q}] for q in QUESTIONS]
    )


@pytest.mark.parametrize("flag", [FLAG_ON, FLAG_OFF])
def test_greedy_tokens_equal_hf_generate(server, tiny, flag):
    """Token for token. The texts differ only where the ids end inside a multi-byte character: vLLM's
    incremental detokenizer holds it back, ``tokenizer.decode`` of the same ids emits U+FFFD."""
    import torch

    model, tok = tiny
    texts = prompts(tok, flag)
    got = complete(server.url, "tiny", texts, max_tokens=24)
    for text, g in zip(texts, got):
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)
        ids = out[0, enc["input_ids"].shape[1] :].tolist()
        ids = ids[: ids.index(tok.eos_token_id) + 1] if tok.eos_token_id in ids else ids
        assert list(g.ids) == ids
        assert g.text == tok.decode(ids, skip_special_tokens=True).rstrip("\ufffd")


@pytest.mark.parametrize("budget", [0, 4])
def test_budgeted_over_http_equals_in_process(server, tiny, budget):
    model, tok = tiny
    texts = prompts(tok, FLAG_ON)
    hf = generate_budgeted(model, tok, texts, budget=budget, max_tokens=24, grace_tokens=0, batch_size=4)
    got = generate_budgeted_http(server.url, "tiny", tok, texts, budget=budget, max_tokens=24)
    assert [g.text for g in got] == [h.text for h in hf]
    assert [g.forced_close for g in got] == [h.forced_close for h in hf]
    assert all(g.thinking_tokens <= budget for g in got if g.forced_close)


def test_thinking_budget_client_against_vllm(server, tiny):
    """The model card's client: the trace is exactly the model's first 6 greedy tokens (the budget),
    exactly one ``</think>``, and the answer continued after it."""
    _, tok = tiny
    client = ThinkingBudgetClient(server.url, "tiny", tokenizer=tok)
    texts = prompts(tok, FLAG_ON)
    first6 = complete(server.url, "tiny", texts, max_tokens=6)
    for q, six in zip(QUESTIONS, first6):
        msgs = [{"role": "system", "content": FLAG_ON}, {"role": "user", "content": q}]
        r = client.chat_completion(msgs, reasoning_budget=6, max_tokens=20, close=None)  # template close
        assert r["text"].count(THINK_CLOSE) == 1, r
        assert r["completion_tokens"] <= 20
        if r["forced_close"]:
            assert r["reasoning_content"] == six.text.strip(), r
            assert r["completion_tokens"] > 6 or r["finish_reason"] == "stop"
