"""Budgeted generation (posttrain.inference.budget) and the budget sweep, on the tiny random model."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LogitsProcessor

from posttrain import PosttrainError
from posttrain.evals.sweep import (
    budget_sweep,
    check_budgets,
    eval_budget_main,
    in_process,
    parse_budgets,
    write_report,
)
from posttrain.inference.budget import generate_budgeted
from posttrain.inference.generate import generate_texts
from posttrain.reasoning import THINK_CLOSE
from posttrain.reasoning import opens_trace as reasoning_open
from posttrain.rewards.format import format_reward

B, GRACE, MAX = 2, 5, 10
QUESTIONS = ["What is 2+3?", "Write a function.", "Tell me a story about a cat."]


def render(tok, q: str, flag: str = "/think") -> str:
    return tok.apply_chat_template(
        [{"role": "user", "content": f"{q} {flag}"}], add_generation_prompt=True, tokenize=False
    )


class ForceNewline(LogitsProcessor):
    """Forces a newline (or ``token``) as the ``at``-th token of an open trace (stateless: counts from ``<think>\\n``)."""

    def __init__(self, tok, at: int, token: str = "\n"):
        self.open_id = tok.convert_tokens_to_ids("<think>")
        self.close_id = tok.convert_tokens_to_ids(THINK_CLOSE)
        self.nl = tok(token, add_special_tokens=False)["input_ids"][0]
        self.at = at

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for r, row in enumerate(input_ids.tolist()):
            if self.close_id in row:
                continue
            pos = len(row) - 1 - row[::-1].index(self.open_id)
            if len(row) - pos - 2 == self.at - 1:  # prompt has "<think>" "\n"; the next token is number `at`
                scores[r] = float("-inf")
                scores[r, self.nl] = 0.0
        return scores


@pytest.fixture(scope="module")
def texts(tiny):
    return [render(tiny[1], q) for q in QUESTIONS]


def test_hard_cut_at_budget_plus_grace_one_close_and_answer_continues(tiny, texts):
    model, tok = tiny
    outs = generate_budgeted(model, tok, texts, budget=B, max_tokens=MAX, grace_tokens=GRACE)
    plain = generate_texts(model, tok, texts, max_new_tokens=B + GRACE)
    for o, (p,) in zip(outs, plain):
        assert o.thinking_tokens <= B + GRACE
        assert o.text.count(THINK_CLOSE) == 1
        assert o.forced_close and o.thinking_tokens == B + GRACE  # the random model writes no newline here
        assert p.startswith(o.text.split(THINK_CLOSE)[0].rstrip("\n"))  # the trace is the greedy trace
        assert o.content.strip() and o.total_tokens == MAX  # the answer continued after the close
        assert format_reward(o.text, "on") == 1.0


def test_grace_window_ends_trace_at_newline(tiny, texts):
    model, tok = tiny
    outs = generate_budgeted(
        model,
        tok,
        texts[:2],
        budget=B,
        max_tokens=MAX,
        grace_tokens=GRACE,
        logits_processors=[ForceNewline(tok, B + 3)],
    )
    for o in outs:
        assert o.thinking_tokens == B + 3 and o.forced_close
        head = o.text.split(THINK_CLOSE)[0]
        assert head.endswith("\n") and not head.endswith(
            "\n\n"
        )  # "</think>\n" after the newline, not "\n</think>"
        assert o.text.count(THINK_CLOSE) == 1 and o.content


def test_newline_inside_budget_does_not_end_trace(tiny, texts):
    model, tok = tiny
    (o,) = generate_budgeted(
        model,
        tok,
        texts[:1],
        budget=B + 3,
        max_tokens=MAX,
        grace_tokens=0,
        logits_processors=[ForceNewline(tok, 2)],
    )
    assert o.thinking_tokens == B + 3


def test_trace_that_closes_itself_is_not_closed_again(tiny, texts):
    model, tok = tiny
    force = ForceNewline(tok, 2, THINK_CLOSE)
    outs = generate_budgeted(
        model, tok, texts[:2], budget=B + 2, max_tokens=MAX, grace_tokens=GRACE, logits_processors=[force]
    )
    for o in outs:
        assert not o.forced_close and o.thinking_tokens == 1 and o.text.count(THINK_CLOSE) == 1
        assert o.content and o.total_tokens > B + 2  # the answer went on past the pause at the budget
        assert o.total_tokens == MAX or o.finish_reason == "stop"


def test_zero_budget_is_well_formed(tiny, texts):
    model, tok = tiny
    (o,) = generate_budgeted(model, tok, texts[:1], budget=0, max_tokens=6, grace_tokens=GRACE)
    assert o.thinking_tokens == 0 and o.forced_close and o.reasoning == ""
    assert o.text.startswith("</think>\n") and o.content
    assert format_reward(o.text, "on") == 1.0


def test_unlimited_budget_equals_plain_generation(tiny, texts):
    model, tok = tiny
    outs = generate_budgeted(model, tok, texts, budget=None, max_tokens=8)
    plain = generate_texts(model, tok, texts, max_new_tokens=8)
    assert [o.text for o in outs] == [p for (p,) in plain]
    assert all(not o.forced_close and o.total_tokens == 8 for o in outs)


def test_no_think_skips_reasoning(tiny):
    model, tok = tiny
    text = render(tok, "What is 2+3?", "/no_think")
    assert text.endswith("<think></think>") and not reasoning_open(text)
    (o,) = generate_budgeted(model, tok, [text], budget=0, max_tokens=6)
    (p,) = generate_texts(model, tok, [text], max_new_tokens=6)[0]
    assert o.text == p and o.thinking_tokens == 0 and not o.forced_close and THINK_CLOSE not in o.text


@pytest.mark.parametrize("budget", [-1, MAX + 1])
def test_bad_budget_rejected(tiny, texts, budget):
    with pytest.raises(ValueError, match="budget"):
        generate_budgeted(*tiny, texts[:1], budget=budget, max_tokens=MAX)
    with pytest.raises(PosttrainError, match="budgets"):
        check_budgets([0, budget], MAX)


def test_parse_budgets():
    assert parse_budgets("[0,8, none]") == [0, 8, None]
    assert parse_budgets(["16", None]) == [16, None]
    with pytest.raises(PosttrainError, match="budgets"):
        parse_budgets("[0,eight]")


def test_checkpoint_without_chat_template_rejected(tiny, tmp_path):
    from posttrain.models import save_checkpoint

    ckpt = save_checkpoint(*tiny, tmp_path / "ck")
    cfg = json.loads((ckpt / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (ckpt / "tokenizer_config.json").write_text(json.dumps(cfg))
    for f in ckpt.glob("chat_template.*"):
        f.unlink()
    with pytest.raises(PosttrainError, match="checkpoint.*chat template"):
        eval_budget_main([str(ckpt), "budgets=[0,none]", f"out={tmp_path / 'o'}", f"data={tmp_path}"])
    with pytest.raises(PosttrainError, match="budgets.*max_tokens"):
        eval_budget_main(
            [str(ckpt), "budgets=[0,64]", "max_tokens=32", f"out={tmp_path / 'o'}", f"data={tmp_path}"]
        )


def test_budget_sweep_rows_and_report(tiny, tmp_path):
    model, tok = tiny
    rows = [
        {
            "prompt": [{"role": "user", "content": "What is 2+3? /no_think"}],
            "category": "math",
            "metadata": '{"answer": "5"}',
        },
        {
            "prompt": [{"role": "user", "content": "Say hi."}],
            "category": "chat",
            "metadata": '{"constraints": [{"kind": "max_words", "value": 100}]}',
        },
    ]
    res = budget_sweep(in_process(model, tok, max_tokens=6, grace=1), tok, rows, [0, 2, None])
    assert [(r["budget"], r["domain"]) for r in res][:3] == [(0, "chat"), (0, "math"), (0, "all")]
    by = {(r["budget"], r["domain"]): r for r in res}
    assert (
        by[(0, "all")]["mean_thinking_tokens"] == 0 and by[(0, "all")]["well_formed"] == 1.0
    )  # /no_think overridden
    assert by[(2, "all")]["mean_thinking_tokens"] <= 3 and by[(None, "all")]["tokens_saved"] == 0
    assert by[(None, "all")]["mean_thinking_tokens"] == 6 and by[(None, "all")]["well_formed"] == 0.0
    # an unclosed trace has no answer to score; random text fails the strict chat check either way
    assert by[(None, "chat")]["accuracy"] == 0.0 and by[(0, "chat")]["accuracy"] == 0.0
    assert by[(0, "chat")]["accuracy_lost"] == by[(None, "chat")]["accuracy"] - by[(0, "chat")]["accuracy"]
    paths = write_report(res, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["rows"][0]["budget"] == 0
    assert "| none | all |" in paths["md"].read_text() and paths["png"].stat().st_size > 1000
