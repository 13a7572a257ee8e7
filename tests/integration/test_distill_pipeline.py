"""init -> sft (2 steps) -> distill (teacher = sft, input = init) through ``posttrain run``: the
manifest's metrics, a checkpoint that loads, and a rerun that skips both stages."""

from __future__ import annotations

import json

import pytest

from posttrain.cli import main

pytestmark = pytest.mark.integration

DISTILL = [
    "pipeline=nano2_tiny",
    "+stage@stage.distill=distill",
    "pipeline.stages=[sft,distill]",
    "data.total=40",
    "stage.sft.max_steps=2",
    "stage.sft.eval_steps=0",
    "stage.sft.max_length=64",
    "stage.distill.teacher=sft",
    "stage.distill.input=init",
    "stage.distill.max_steps=3",
    "stage.distill.max_length=64",
    "stage.distill.logging_steps=1",
]


def test_init_sft_then_distill_sft_into_init(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    main(["run", f"run_dir={run_dir}", *DISTILL])
    m = json.loads((run_dir / "02_distill" / "manifest.json").read_text())
    assert m["status"] == "done" and m["kind"] == "distill", m.get("error")
    assert m["parent"] == "init" and m["inputs"]["teacher"].endswith("01_sft/checkpoint")
    metrics = m["metrics"]
    assert metrics["global_step"] == 3 and metrics["initial_eval_kl"] > 0
    assert metrics["final_eval_kl"] < metrics["initial_eval_kl"]  # moved toward the teacher
    assert metrics["final_eval_loss"] > 0
    AutoModelForCausalLM.from_pretrained(run_dir / m["checkpoint"])
    main(["run", f"run_dir={run_dir}", *DISTILL])  # same config: both stages reused
    assert (
        json.loads((run_dir / "02_distill" / "manifest.json").read_text())["finished_at"] == m["finished_at"]
    )
