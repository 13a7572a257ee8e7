"""SIGKILL at named points, broken copies of a finished run, two runs at once, and no secrets on disk
(a tiny SFT-only chain, so the default tier stays fast; tests/faults/ covers every stage)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from posttrain.pipeline.faultinject import launch
from posttrain.pipeline.lock import acquire
from posttrain.pipeline.rundiff import compare_runs

pytestmark = pytest.mark.integration

SFT = ["pipeline=nano2_smoke", "pipeline.stages=[sft]"]
FAKE_KEY = f"fake-wandb-key-{uuid.uuid4().hex}"


def run(run_dir: Path, *extra: str, fault: str | None = None, env: dict | None = None) -> dict:
    return launch([*SFT, f"run_dir={run_dir}", *extra], fault=fault, env=env, log=run_dir.with_suffix(".log"))


def manifest(run_dir: Path, stage_dir: str = "01_sft") -> dict:
    return json.loads((run_dir / stage_dir / "manifest.json").read_text())


def unexplained(ref: Path, got: Path) -> list:
    return [d for d in compare_runs(ref, got) if d.explanation is None]


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Path:
    """An unbroken run, logged to W&B (offline) with a fake API key in the environment."""
    d = tmp_path_factory.mktemp("crash") / "ref"
    env = {**os.environ, "WANDB_API_KEY": FAKE_KEY, "WANDB_MODE": "offline"}
    assert run(d, "logger=wandb", env=env)["rc"] == 0, d.with_suffix(".log").read_text()[-3000:]
    return d


def test_wandb_api_key_is_written_to_no_file_of_the_run(ref):
    files = [p for p in ref.rglob("*") if p.is_file()] + [ref.with_suffix(".log")]
    names = {p.name for p in files}
    assert {"manifest.json", "config.json", "metrics.jsonl", "cli.log"} <= names, names
    assert any("wandb" in p.parts for p in files)  # W&B really ran and wrote its offline run
    leaks = [str(p) for p in files if FAKE_KEY.encode() in p.read_bytes()]
    assert not leaks


@pytest.mark.parametrize(
    "fault",
    ["trainer_save:2:after", "safetensors:4:mid"],
    ids=["after-last-trainer-checkpoint", "final-save-cut-in-half"],
)
def test_sigkill_then_rerun_ends_bit_identical(ref, tmp_path, fault):
    """Killed after checkpoint-4 of max_steps 4 (the rerun used to train a 5th step), or halfway
    through writing the final weights (a ``.checkpoint-*`` temp dir is left)."""
    d = tmp_path / "killed"
    assert run(d, fault=fault)["killed"]
    assert manifest(d)["status"] == "running"
    leftovers = list((d / "01_sft").glob(".checkpoint-*"))
    assert bool(leftovers) == fault.startswith("safetensors")
    assert run(d)["rc"] == 0
    m = manifest(d)
    assert m["metrics"]["global_step"] == 4 and m["metrics"]["resumed_from"] == "01_sft/trainer/checkpoint-4"
    assert m["metrics"]["resumed_at_max_steps"] is True
    assert not list((d / "01_sft").glob(".checkpoint-*"))
    assert not unexplained(ref, d)


def test_copy_of_a_finished_run_checks_its_outputs(ref, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(ref, d)
    before = manifest(d)
    assert before["checkpoint"] == "01_sft/checkpoint"  # relative: the copy points at its own files
    w = d / "01_sft" / "checkpoint" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    shutil.rmtree(d / "data" / "sft")
    assert run(d)["rc"] == 0
    log = d.with_suffix(".log").read_text()
    assert "model.safetensors has" in log and "data/sft/dataset_dict.json is missing" in log
    after = manifest(d)
    assert after["started_at"] != before["started_at"]  # the corrupt stage reran
    assert manifest(d, "00_init")["started_at"] == manifest(ref, "00_init")["started_at"]
    assert (d / "data" / "sft" / "dataset_dict.json").exists() and not unexplained(ref, d)

    (d / "01_sft" / "manifest.json").write_text('{"stage": "sft",')
    cmd = [sys.executable, "-m", "posttrain.cli", "run", *SFT, f"run_dir={d}"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {d}/01_sft/manifest.json: not valid JSON")
    status = subprocess.run(
        [sys.executable, "-m", "posttrain.cli", "status", str(d), "json=true"], capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr[-2000:]
    assert [r["status"] for r in json.loads(status.stdout)] == ["done", "unreadable"]


def test_second_run_on_the_same_dir_is_refused_naming_the_holder(tmp_path):
    lock = acquire(tmp_path / "busy")
    try:
        cmd = [sys.executable, "-m", "posttrain.cli", "run", *SFT, f"run_dir={tmp_path / 'busy'}"]
        out = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        lock.close()
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert f"is in use by pid {os.getpid()} on " in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "busy" / "00_init").exists()
