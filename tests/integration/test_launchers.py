"""Multi-process training through launcher=torchrun (gloo on CPU) matches the single-process run,
and Hydra multirun sweeps run one pipeline per sweep point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.integration

# Sequential sampling makes the global batch of 2 processes x 2 equal to 1 process x 4.
SFT_ONLY = [
    "pipeline=nano2_smoke",
    "pipeline.stages=[sft]",
    "+stage.sft.trainer_args={train_sampling_strategy: sequential}",
]


def posttrain(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "posttrain.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_torchrun_two_processes_match_single_process(tmp_path):
    posttrain("run", *SFT_ONLY, f"run_dir={tmp_path}/one", "stage.sft.per_device_train_batch_size=4")
    posttrain(
        "run",
        *SFT_ONLY,
        f"run_dir={tmp_path}/two",
        "stage.sft.per_device_train_batch_size=2",
        "launcher=torchrun",
        "launcher.nproc=2",
    )
    a = load_file(tmp_path / "one/01_sft/checkpoint/model.safetensors")
    b = load_file(tmp_path / "two/01_sft/checkpoint/model.safetensors")
    init = load_file(tmp_path / "one/00_init/checkpoint/model.safetensors")
    assert any(not torch.equal(a[k], init[k]) for k in a), "training changed nothing"
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4)
    m = json.loads((tmp_path / "two/01_sft/manifest.json").read_text())
    assert m["status"] == "done" and m["metrics"]["global_step"] == 4


DISTILL = [
    "pipeline=nano2_smoke",
    "+stage@stage.distill=distill",
    "pipeline.stages=[sft,distill]",
    "stage.distill.input=init",
    "stage.distill.teacher=sft",
    "stage.distill.max_steps=3",
    "stage.distill.max_length=128",
    "+stage.distill.trainer_args={train_sampling_strategy: sequential}",
    "+stage.sft.trainer_args={train_sampling_strategy: sequential}",
]


def test_torchrun_distill_matches_single_process_and_scores_the_whole_split(tmp_path):
    one = [f"run_dir={tmp_path}/one", "stage.distill.per_device_train_batch_size=4"]
    posttrain("run", *DISTILL, *one, "stage.sft.per_device_train_batch_size=4")
    two = [f"run_dir={tmp_path}/two", "stage.distill.per_device_train_batch_size=2"]
    two.append("stage.sft.per_device_train_batch_size=2")  # the same teacher: global batch 4 in both
    posttrain("run", *DISTILL, *two, "launcher=torchrun", "launcher.nproc=2")
    a = load_file(tmp_path / "one/02_distill/checkpoint/model.safetensors")
    b = load_file(tmp_path / "two/02_distill/checkpoint/model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4)
    one, two = (
        json.loads((tmp_path / d / "02_distill/manifest.json").read_text())["metrics"] for d in ("one", "two")
    )
    assert two["global_step"] == 3 and two["eval_tokens"] == one["eval_tokens"] > 0  # not a rank's shard
    for k in ("initial_eval_loss", "final_eval_loss", "initial_eval_kl", "final_eval_kl"):
        assert two[k] == pytest.approx(one[k], rel=1e-4)


def test_hydra_multirun_sweeps_dpo_beta(tmp_path):
    sweep = tmp_path / "sweep"
    posttrain(
        "run",
        "-m",
        "pipeline=nano2_smoke",
        "pipeline.stages=[sft,preference,dpo]",
        "stage.sft.max_steps=2",
        "stage.dpo.beta=0.1,0.3",
        f"run_dir={sweep}/beta_" + "${stage.dpo.beta}",
    )
    cfgs = {
        b: json.loads((sweep / f"beta_{b}" / "03_dpo" / "config.json").read_text()) for b in ("0.1", "0.3")
    }
    assert {b: c["beta"] for b, c in cfgs.items()} == {"0.1": 0.1, "0.3": 0.3}
    fps = {
        json.loads((sweep / f"beta_{b}" / "01_sft" / "manifest.json").read_text())["fingerprint"]
        for b in cfgs
    }
    assert len(fps) == 1  # identical upstream stages fingerprint identically


def test_sft_under_deepspeed_zero3_single_process(tmp_path):
    pytest.importorskip("deepspeed")
    run_dir = tmp_path / "ds"
    posttrain(
        "run", "pipeline=nano2_smoke", "pipeline.stages=[sft]", f"run_dir={run_dir}", "+deepspeed=zero3"
    )
    m = json.loads((run_dir / "01_sft/manifest.json").read_text())
    assert m["status"] == "done" and m["metrics"]["global_step"] == 4
    cfg = json.loads((run_dir / "01_sft/trainer/checkpoint-4/trainer_state.json").read_text())
    assert cfg["global_step"] == 4
    assert list(
        (run_dir / "01_sft/trainer/checkpoint-4").glob("global_step4/*zero*")
    )  # ZeRO-partitioned states
    a = load_file(run_dir / "01_sft/checkpoint/model.safetensors")
    init = load_file(run_dir / "00_init/checkpoint/model.safetensors")
    assert a.keys() == init.keys() and any(not torch.equal(a[k], init[k]) for k in a)
