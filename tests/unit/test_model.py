"""The tiny NemotronH trains and generates on CPU; checkpoints round-trip; bad paths fail in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from posttrain import PosttrainError
from posttrain.models import check_checkpoint, load_model, load_tokenizer, save_checkpoint


def test_tiny_model_size_and_pattern(tiny):
    model, _ = tiny
    n = sum(p.numel() for p in model.parameters())
    assert 1_000_000 <= n <= 5_000_000
    types = model.config.layer_types
    assert types.count("linear_attention") > types.count("full_attention") >= 1 and "mlp" in types


def test_forward_backward_and_generate(tiny):
    model, tok = tiny
    x = torch.randint(0, len(tok), (2, 32))
    out = model(input_ids=x, labels=x)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(out.loss) and grads and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad()
    gen = model.generate(x[:, :8], max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert gen.shape == (2, 13)


def test_save_load_round_trip_identical_logits(tiny, tmp_path):
    model, tok = tiny
    save_checkpoint(model, tok, tmp_path / "ckpt")
    m2, t2 = load_model(str(tmp_path / "ckpt")), load_tokenizer(str(tmp_path / "ckpt"))
    x = torch.randint(0, len(tok), (2, 24))
    with torch.no_grad():
        assert torch.equal(model(x).logits, m2(x).logits)
    assert t2.chat_template == tok.chat_template and t2.get_vocab() == tok.get_vocab()


def test_missing_and_incomplete_paths(tmp_path, monkeypatch):
    with pytest.raises(PosttrainError, match="does not exist"):
        check_checkpoint(str(tmp_path / "nope"))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(PosttrainError, match="no weight files"):
        check_checkpoint(str(tmp_path / "half"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PosttrainError, match="HF_HUB_OFFLINE=1"):
        check_checkpoint("nvidia/NVIDIA-Nemotron-Nano-9B-v2")


def test_unreadable_tokenizer_dir(tmp_path):
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text("not json")
    with pytest.raises(PosttrainError, match="cannot read a tokenizer"):
        load_tokenizer(str(tmp_path / "tok"))


@pytest.mark.parametrize("path", ["/nonexistent/ckpt", "nvidia/NVIDIA-Nemotron-Nano-9B-v2"])
def test_cli_bad_model_path_is_one_line(tmp_path, path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "posttrain.cli",
            "run",
            "model=hf",
            f"model.path={path}",
            f"run_dir={tmp_path}/r",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "model.path" in lines[0]
