"""Generation throughput meter (posttrain.inference.generate.metered): what it counts."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import LogitsProcessor

from posttrain.inference.budget import generate_budgeted
from posttrain.inference.generate import generate_texts, generated_tokens, metered


@given(
    rows=st.lists(st.lists(st.integers(0, 5), min_size=3, max_size=3), min_size=1, max_size=6),
    stop=st.sets(st.integers(0, 5), max_size=2),
)
def test_generated_tokens_counts_up_to_and_including_the_first_stop(rows, stop):
    expect = 0
    for row in rows:
        hits = [j for j, t in enumerate(row) if t in stop]
        expect += hits[0] + 1 if hits else len(row)
    assert generated_tokens(torch.tensor(rows), stop) == expect


class EosAfter(LogitsProcessor):
    """Forces EOS as generated token number ``k + 1`` of every row."""

    def __init__(self, eos: int, prompt_len: int, k: int):
        self.eos, self.start, self.k = eos, prompt_len, k

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] - self.start >= self.k:
            scores[:] = float("-inf")
            scores[:, self.eos] = 0.0
        return scores


def test_metered_counts_each_row_until_its_eos(tiny):
    model, tok = tiny
    msgs = [[{"role": "user", "content": f"What is {i} + 1? /no_think"}] for i in range(3)]
    texts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in msgs]
    width = max(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    with metered() as outer:
        with metered() as inner:
            generate_budgeted(
                model,
                tok,
                texts,
                budget=None,
                max_tokens=12,
                logits_processors=[EosAfter(tok.eos_token_id, width, 4)],
            )
        assert (inner.calls, inner.rows, inner.tokens) == (1, 3, 3 * 5)  # 4 tokens, then EOS
        assert inner.seconds > 0 and inner.tokens_per_s > 0
        generate_texts(model, tok, texts[:2], max_new_tokens=3, temperature=1.0, num_return_sequences=2)
    assert (outer.calls, outer.rows) == (2, 3 + 4)
    assert 3 * 5 + 4 <= outer.tokens <= 3 * 5 + 4 * 3  # sampled rows stop at EOS or after 3 tokens
    with metered() as after:
        pass
    assert after.tokens == 0 and after.as_metrics("g") == {
        "g_tokens": 0,
        "g_seconds": 0.0,
        "g_tokens_per_s": 0.0,
    }


def test_greedy_with_several_return_sequences_repeats_the_one_greedy_continuation(tiny):
    """``generate`` refuses greedy decoding with ``num_return_sequences > 1``; greedy copies are identical,
    so ``generate_texts`` decodes once per text and repeats it (preference mining at temperature 0)."""
    model, tok = tiny
    texts = ["Calculate 2 + 2.", "Sort 3, 1, 2."]
    one = generate_texts(model, tok, texts, max_new_tokens=6, temperature=0.0)
    with metered() as m:
        three = generate_texts(model, tok, texts, max_new_tokens=6, temperature=0.0, num_return_sequences=3)
    assert three == [o * 3 for o in one] and all(len(o) == 1 for o in one)
    assert m.rows == len(texts)  # decoded once per text, not three times
