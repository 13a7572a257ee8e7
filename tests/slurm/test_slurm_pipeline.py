"""The tiny pipeline through real sbatch: dependency order, skip on resubmit, USR1 -> save -> requeue -> resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from posttrain.launch.slurm import job_info

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

SLURM = ["launcher=slurm", "launcher.partition=debug", "launcher.mem=2G", "launcher.cpus_per_task=2"]


def run_cli(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``posttrain run pipeline=nano2_smoke`` with the Slurm launcher, as a user submits it."""
    cmd = [sys.executable, "-m", "posttrain.cli", "run", "pipeline=nano2_smoke", f"run_dir={run_dir}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*cmd, *SLURM, *overrides], capture_output=True, text=True, env=env)


def submit(run_dir: Path, *overrides: str) -> dict[str, str]:
    out = run_cli(run_dir, *overrides)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("submitted:"))
    if "nothing" in line:
        return {}
    return dict(kv.split("=") for kv in line.split(":", 1)[1].strip().split(", "))


def manifest(run_dir: Path, dirname: str) -> dict:
    return json.loads((run_dir / dirname / "manifest.json").read_text())


def logs(run_dir: Path) -> str:
    return "\n".join(
        f"--- {p}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted((run_dir / "slurm").glob("*.out"))
    )


def test_pipeline_runs_as_chained_jobs_in_order(tmp_path, wait_for_states):
    run_dir = tmp_path / "run"
    stages = "pipeline.stages=[sft,preference,dpo]"
    ids = submit(run_dir, stages)
    assert list(ids) == ["sft", "preference", "dpo"]
    m = manifest(run_dir, "01_sft")
    assert m["status"] in ("pending", "running") and m["slurm_job_id"] == ids["sft"]
    states = wait_for_states(list(ids.values()), timeout=600)
    assert set(states.values()) == {"COMPLETED"}, (states, logs(run_dir))
    ms = [manifest(run_dir, d) for d in ("01_sft", "02_preference", "03_dpo")]
    assert all(m["status"] == "done" for m in ms)
    assert ms[0]["finished_at"] <= ms[1]["started_at"] and ms[1]["finished_at"] <= ms[2]["started_at"]
    assert [m["slurm_job_id"] for m in ms] == list(ids.values())
    assert (run_dir / "03_dpo" / "checkpoint" / "model.safetensors").exists()
    assert submit(run_dir, stages) == {}  # finished stages are not resubmitted
    status = subprocess.run(
        [sys.executable, "-m", "posttrain.cli", "status", str(run_dir), "json=true"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {r["stage"]: r for r in json.loads(status.stdout)}
    assert rows["dpo"]["slurm_job_id"] == ids["dpo"] and rows["dpo"]["slurm_state"] == "COMPLETED"


def test_usr1_saves_requeues_and_resumes(tmp_path, wait_for_states):
    run_dir = tmp_path / "run"
    ids = submit(
        run_dir,
        "pipeline.stages=[sft]",
        "stage.sft.max_steps=30",
        "stage.sft.save_steps=1000",
        "stage.sft.logging_steps=1",
    )
    job = ids["sft"]
    metrics = run_dir / "01_sft" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline, logs(run_dir)
        time.sleep(0.5)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True, timeout=30)
    states = wait_for_states([job], timeout=900)
    assert states[job] == "COMPLETED", (states, logs(run_dir))
    assert job_info(job).get("Restarts") == "1"
    m = manifest(run_dir, "01_sft")
    assert m["status"] == "done" and m["attempts"] == 2
    step = int(m["metrics"]["resumed_from"].rsplit("-", 1)[1])
    assert 0 < step < 30 and m["metrics"]["global_step"] == 30


RAY_SUB = """#!/usr/bin/env bash
# Stand-in for NeMo-RL's ray.sub (NeMo-RL cannot be installed here). The real one starts a Ray cluster
# on the allocation and runs $COMMAND on its head node in $CONTAINER; this one records what it was
# given and runs $COMMAND, whose NeMo-RL call then fails for want of NeMo-RL.
printf 'COMMAND=%s\\nNEMO_RL_DIR=%s\\nPWD=%s\\n' "$COMMAND" "$NEMO_RL_DIR" "$PWD" > ray_env.txt
exec bash -c "$COMMAND"
"""


def test_backend_nemo_rl_stage_is_write_then_ray_sub_then_collect(tmp_path, wait_for_states):
    """A ``backend=nemo_rl`` stage is three chained jobs: write the NeMo-RL job (stage stays pending),
    NeMo-RL's ray.sub running its command.sh, then the stage again taking ``hf/``. NeMo-RL itself cannot
    run here, so its job fails and the collect job is cancelled with it; once ``hf/`` exists (a copy of
    the input, standing in for NeMo-RL's converted output) a resubmit sends only the collect job."""
    import shutil

    run_dir, nemo = tmp_path / "run", tmp_path / "nemo-rl"
    args = ["pipeline.stages=[sft]", "stage.sft.backend=nemo_rl", f"launcher.nemo_rl_dir={nemo}"]
    missing = run_cli(run_dir, *args)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1].startswith(
        f"error: launcher.nemo_rl_dir: {nemo}/ray.sub not found"
    ), missing.stderr[-2000:]
    nemo.mkdir()
    (nemo / "ray.sub").write_text(RAY_SUB)
    ids = submit(run_dir, *args)
    pairs = manifest(run_dir, "01_sft")["outputs"]["slurm_jobs"]
    jobs = dict(pairs)
    assert [name for name, _ in pairs] == ["pt-sft-write", "pt-sft-nemo-rl", "pt-sft"] and ids == {
        "sft": jobs["pt-sft"]
    }
    states = wait_for_states(list(jobs.values()), timeout=600)
    assert [states[j] for j in jobs.values()] == ["COMPLETED", "FAILED", "CANCELLED"], (states, logs(run_dir))
    m = manifest(run_dir, "01_sft")
    job = run_dir / "nemo_rl" / "01_sft"
    assert m["status"] == "pending" and m["outputs"]["nemo_rl_job"] == str(job)
    assert m["slurm_job_id"] == jobs["pt-sft"]
    config = yaml.safe_load((job / "config.yaml").read_text())
    assert config["policy"]["model_name"] == str(run_dir / "00_init" / "checkpoint")
    env = dict(ln.split("=", 1) for ln in (nemo / "ray_env.txt").read_text().splitlines())
    assert env == {"COMMAND": f"bash {job}/command.sh", "NEMO_RL_DIR": str(nemo), "PWD": str(nemo)}
    assert job_info(jobs["pt-sft-nemo-rl"])["Command"] == str(nemo / "ray.sub")

    shutil.copytree(run_dir / "00_init" / "checkpoint", job / "hf")
    again = submit(run_dir, *args)
    assert list(again) == ["sft"] and "slurm_jobs" not in manifest(run_dir, "01_sft")["outputs"]
    states = wait_for_states(list(again.values()), timeout=300)
    assert set(states.values()) == {"COMPLETED"}, (states, logs(run_dir))
    m = manifest(run_dir, "01_sft")
    assert m["status"] == "done" and m["metrics"] == {"backend": "nemo_rl"}
    assert (run_dir / "01_sft" / "checkpoint").resolve() == (job / "hf").resolve()
