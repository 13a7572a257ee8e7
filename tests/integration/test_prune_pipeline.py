"""init -> prune on the tiny NemotronH through ``posttrain run``: every axis cut, the manifest's metrics,
``importance.json``, and a checkpoint that ``from_pretrained`` loads with the rewritten config."""

from __future__ import annotations

import json

import pytest
import torch

from posttrain.cli import main

pytestmark = pytest.mark.integration

PRUNE = [
    "pipeline=nano2_tiny",
    "+stage@stage.prune=prune",
    "pipeline.stages=[prune]",
    "data.total=40",
    "stage.prune.calibration_samples=8",
    "stage.prune.calibration_max_length=64",
    "stage.prune.num_layers=6",
    "stage.prune.depth_importance=logit_mse",
    "stage.prune.hidden_size=96",
    "stage.prune.intermediate_size=128",
    "stage.prune.mamba_num_heads=4",
    "stage.prune.num_attention_heads=2",
]


def test_init_then_prune_writes_a_smaller_loadable_checkpoint(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    main(["run", f"run_dir={run_dir}", *PRUNE])
    m = json.loads((run_dir / "01_prune" / "manifest.json").read_text())
    assert m["status"] == "done" and m["kind"] == "prune", m.get("error")
    metrics = m["metrics"]
    init = json.loads((run_dir / "00_init" / "manifest.json").read_text())["metrics"]
    assert metrics["params_before"] == init["params"] > metrics["params_after"]
    assert len(metrics["removed_layers"]) == 2 and all(0 <= i < 8 for i in metrics["removed_layers"])
    pattern = "".join(c for i, c in enumerate("M-M*-M*-") if i not in metrics["removed_layers"])
    assert metrics["kept"] == {
        "num_layers": 6,
        "hybrid_override_pattern": pattern,
        "hidden_size": 96,
        "intermediate_size": 128,
        "mamba_num_heads": 4,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
    }
    assert metrics["calibration_samples"] == 8 and 0 < metrics["calibration_tokens"] <= 8 * 64
    imp = json.loads((run_dir / "01_prune" / "importance.json").read_text())
    assert len(imp["hidden"]) == 128 and len(imp["logit_mse"]) == 8 and set(imp["mamba"]) == {"0", "2", "5"}

    assert m["checkpoint"] == "01_prune/checkpoint"  # run-dir relative
    model = AutoModelForCausalLM.from_pretrained(run_dir / m["checkpoint"])
    tok = AutoTokenizer.from_pretrained(run_dir / m["checkpoint"])
    assert model.config.hybrid_override_pattern == pattern and model.config.hidden_size == 96
    assert sum(p.numel() for p in model.parameters()) == metrics["params_after"]
    ids = tok(
        tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False), return_tensors="pt"
    )
    with torch.no_grad():
        assert torch.isfinite(model(**ids).logits).all()
