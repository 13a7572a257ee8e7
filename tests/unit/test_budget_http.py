"""Budgeted generation over HTTP (``vllm_server.generate_budgeted_http``) is the in-process algorithm:
the trace cut replayed on finished runs (``budget.cut_traces``) equals stopping in process, and against
``posttrain serve`` (HF generation behind the same ``/v1/completions`` API, ``return_token_ids``
included) its results equal ``generate_budgeted``'s, grace window included. The eval stage's
``engine=vllm`` runs its budget sweep through that client, with no HF model loaded by the stage."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessor

from posttrain.evals.sweep import force_think
from posttrain.inference.budget import _cut, _Runner, cut_traces, generate_budgeted
from posttrain.inference.generate import render_prompts
from posttrain.inference.server import make_server
from posttrain.inference.vllm_server import complete, generate_budgeted_http
from posttrain.reasoning import THINK_CLOSE

# the tiny model's greedy trace for the capital question holds a newline token at 27: B=24 + grace 5 cuts it
QUESTIONS = ["What is 2+3?", "Write a function.", "What is the capital of France?", "Why? /no_think"]


class Force(LogitsProcessor):
    """Forces token ``tid`` as generated token number ``at`` of every row (one ``generate`` call)."""

    def __init__(self, at: int, tid: int):
        self.at, self.tid, self.start = at, tid, None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.start = input_ids.shape[1] if self.start is None else self.start
        if input_ids.shape[1] - self.start == self.at - 1:
            scores[:] = float("-inf")
            scores[:, self.tid] = 0.0
        return scores


@pytest.fixture(scope="module")
def texts(tiny):
    return render_prompts(tiny[1], [force_think([{"role": "user", "content": q}]) for q in QUESTIONS])


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    budget=st.integers(0, 6),
    grace=st.integers(0, 6),
    at=st.integers(1, 12),
    token=st.sampled_from(["\n", THINK_CLOSE, "eos"]),
)
def test_cut_traces_equals_stopping_in_process(tiny, texts, budget, grace, at, token):
    """A server generates each trace to ``B + grace`` (or EOS); cutting the finished runs gives the
    traces the in-process stop gives (a newline or ``</think>`` after B, EOS, the cap)."""
    model, tok = tiny
    tid = tok.eos_token_id if token == "eos" else tok(token, add_special_tokens=False)["input_ids"][0]
    cap = 0 if budget == 0 else budget + grace
    old, tok.padding_side = tok.padding_side, "left"
    try:
        want = _Runner(model, tok, 0.0, 1.0, 8, [Force(at, tid)]).traces(texts, budget, cap)
        run = _Runner(model, tok, 0.0, 1.0, 8, [Force(at, tid)])
        full = run.generate(texts, cap) if cap else [[] for _ in texts]  # no stop but EOS: a server's run
    finally:
        tok.padding_side = old
    assert cut_traces(tok, [_cut(ids, cap, run.eos) for ids in full], budget, cap) == want


@pytest.fixture(scope="module")
def served(tiny):
    """``posttrain serve`` on the tiny model, one request at a time; yields its URL."""
    model, tok = tiny
    srv = make_server(
        None, "127.0.0.1", 0, model=model, tokenizer=tok, served_model_name="tiny", max_context=256
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield "http://{}:{}".format(*srv.server_address[:2])
    srv.shutdown()
    srv.server_close()


def test_serve_returns_token_ids(tiny, texts, served):
    tok = tiny[1]
    (c,) = complete(served, "tiny", texts[:1], max_tokens=5)
    assert len(c.ids) == c.tokens == 5 and tok.decode(list(c.ids), skip_special_tokens=True) == c.text
    body = {"prompt": texts[0], "max_tokens": 5, "thinking_budget": 2, "return_token_ids": True}
    req = urllib.request.Request(f"{served}/v1/completions", json.dumps(body).encode())
    with pytest.raises(urllib.error.HTTPError, match="400"):
        urllib.request.urlopen(req, timeout=60)


@pytest.mark.parametrize(
    ("budget", "grace", "max_tokens"),
    [(0, 0, 12), (2, 0, 12), (5, 3, 12), (None, 3, 12), (24, 0, 32), (24, 5, 32)],
)
def test_budgeted_over_http_equals_in_process(tiny, texts, served, budget, grace, max_tokens):
    model, tok = tiny
    kw = {"budget": budget, "max_tokens": max_tokens, "grace_tokens": grace}
    want = generate_budgeted(model, tok, texts, batch_size=4, **kw)
    assert generate_budgeted_http(served, "tiny", tok, texts, concurrency=2, **kw) == want
    if grace == 5:  # the window is exercised: the capital question's trace ends at its newline (27 < 29)
        assert want[2].thinking_tokens == 27 and want[2].forced_close


def test_eval_stage_sweeps_through_the_server_engine(tiny, tmp_path, monkeypatch, eval_stage):
    """``engine=vllm`` with ``posttrain serve`` standing in for the vLLM server: the same sweep rows and
    eval samples as ``engine=hf``; the stage loads no HF model; the sweep's requests reach the server
    (traces of B + grace tokens, grace 5)."""
    from posttrain.inference import vllm_server
    from posttrain.models import save_checkpoint
    from posttrain.stages import eval as eval_stage_module

    ckpt = save_checkpoint(*tiny, tmp_path / "ck")
    _, hf_sweep, hf_samples = eval_stage(ckpt, tmp_path / "hf")
    started, caps = [], []

    class Serve:
        """Stands in for ``VLLMServer``: ``posttrain serve`` on the checkpoint, its requests recorded."""

        def __init__(self, checkpoint, *, name, **_):
            started.append(str(checkpoint))
            self.srv = make_server(str(checkpoint), "127.0.0.1", 0, served_model_name=name, max_context=256)
            self.name, self.url = name, "http://{}:{}".format(*self.srv.server_address[:2])
            engine = self.srv.RequestHandlerClass.engine
            handle = engine.handle
            engine.handle = lambda path, body: caps.append(body["max_tokens"]) or handle(path, body)

        def __enter__(self):
            threading.Thread(target=self.srv.serve_forever, daemon=True).start()
            return self

        def __exit__(self, *exc):
            self.srv.shutdown()
            self.srv.server_close()

    def no_model(*a, **k):
        raise AssertionError("engine=vllm loaded an HF model in the eval stage")

    monkeypatch.setattr(vllm_server, "VLLMServer", Serve)
    monkeypatch.setattr(eval_stage_module, "load_model", no_model)
    out, sweep, samples = eval_stage(ckpt, tmp_path / "vllm", engine="vllm", vllm_concurrency=2)
    assert started == [str(ckpt)] and out.outputs["engine"] == "vllm"
    assert sweep["rows"] == hf_sweep["rows"] and len(sweep["rows"]) == 4 * 3  # budgets x (math, chat, all)
    assert samples == hf_samples
    assert {3, 2 + 5, 24 + 5} <= set(caps)  # eval budget 3 (no grace); sweep budgets 2 and 24, grace 5
