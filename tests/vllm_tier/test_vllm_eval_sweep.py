"""The eval stage's budget sweep with ``engine=vllm`` runs on the vLLM server (the tier's, standing in for
the one ``engine_for`` starts), grace window included, and gives the ``engine=hf`` sweep's rows; the stage
loads no HF model for it. Greedy: the budgeted client over HTTP equals ``generate_budgeted`` result for
result (text, thinking and total tokens, forced close, finish reason)."""

from __future__ import annotations

import pytest

from posttrain.evals.sweep import force_think
from posttrain.inference.budget import generate_budgeted
from posttrain.inference.generate import render_prompts
from posttrain.inference.vllm_server import generate_budgeted_http

QUESTIONS = ["What is 2+3?", "Say hi.", "What is the capital of France?", "Why? /no_think"]


@pytest.mark.parametrize(("budget", "grace"), [(2, 5), (24, 5), (None, 5)])
def test_budgeted_with_grace_over_vllm_equals_in_process(server, tiny, budget, grace):
    model, tok = tiny
    texts = render_prompts(tok, [force_think([{"role": "user", "content": q}]) for q in QUESTIONS])
    kw = {"budget": budget, "max_tokens": 32, "grace_tokens": grace}
    want = generate_budgeted(model, tok, texts, batch_size=4, **kw)
    assert generate_budgeted_http(server.url, "tiny", tok, texts, concurrency=1, **kw) == want


def test_eval_sweep_on_vllm_equals_hf(server, tiny_ckpt, tmp_path, monkeypatch, eval_stage):
    from posttrain.inference import vllm_server
    from posttrain.stages import eval as eval_stage_module

    _, hf_sweep, hf_samples = eval_stage(tiny_ckpt, tmp_path / "hf")
    started = []

    class Shared:
        """``VLLMServer`` for the stage: the tier's server (each start costs minutes), kept running."""

        def __init__(self, checkpoint, **_):
            started.append(str(checkpoint))

        def __enter__(self):
            return server

        def __exit__(self, *exc):
            return None

    def no_model(*a, **k):
        raise AssertionError("engine=vllm loaded an HF model in the eval stage")

    monkeypatch.setattr(vllm_server, "VLLMServer", Shared)
    monkeypatch.setattr(eval_stage_module, "load_model", no_model)
    out, sweep, samples = eval_stage(tiny_ckpt, tmp_path / "vllm", engine="vllm", vllm_concurrency=1)
    assert started == [tiny_ckpt] and out.outputs["engine"] == "vllm"
    assert sweep["rows"] == hf_sweep["rows"] and len(sweep["rows"]) == 4 * 3  # budgets x (math, chat, all)
    assert samples == hf_samples
