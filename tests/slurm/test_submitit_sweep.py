"""`posttrain run -m hydra/launcher=submitit_slurm ...` sends a Hydra sweep to the real test cluster:
one Slurm array task per sweep point, each running the whole pipeline in-process (launcher=local)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from posttrain.launch.slurm import cancel, job_info

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

BETAS = ("0.05", "0.2")
STAGES = {"sft": "01_sft", "preference": "02_preference", "dpo": "03_dpo"}
# the submitit parent polls `sacct`, which this cluster has no accounting for, and waits for each
# task's result pickle; a task that dies without one (SystemExit) would leave it waiting forever
SWEEP_TIMEOUT_S = 420


def _submitit_logs(folder: Path) -> str:
    return "\n".join(
        f"--- {p}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(folder.glob("*_*/*_log.*"))
    )


def _quiet(text: str) -> str:
    # drop the repeated "Bypassing sacct error" / "accounting storage is disabled" lines
    return "\n".join(ln for ln in text.splitlines() if "sacct" not in ln and "accounting" not in ln)


def test_hydra_submitit_slurm_sweep_runs_one_slurm_job_per_point(tmp_path, wait_for_states):
    sweep = tmp_path / "sweep"
    folder = sweep / ".submitit"  # the plugin's default: ${hydra.sweep.dir}/.submitit/%j
    cmd = [
        sys.executable,
        "-m",
        "posttrain.cli",
        "run",
        "-m",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=debug",
        "hydra.launcher.timeout_min=10",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=2",
        f"hydra.sweep.dir={sweep}",
        "pipeline=nano2_smoke",
        "pipeline.stages=[sft,preference,dpo]",
        "stage.sft.max_steps=2",
        f"run_dir={sweep}/beta_" + "${stage.dpo.beta}",
        "stage.dpo.beta=" + ",".join(BETAS),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=SWEEP_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        ids = [p.name for p in folder.glob("*_*") if p.is_dir()]
        cancel(ids)
        stdout = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
        states = {i: job_info(i).get("JobState") for i in ids}
        pytest.fail(
            f"sweep still waiting after {SWEEP_TIMEOUT_S}s; tasks {states}\n"
            f"{_quiet(stdout)[-2000:]}\n{_submitit_logs(folder)}",
            pytrace=False,
        )
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, f"{_quiet(out.stderr)[-3000:]}\n{_submitit_logs(folder)}"
    print(f"submitit sweep of {len(BETAS)} points finished in {elapsed:.1f}s")

    # one sbatch array of two tasks on the cluster's partition, through the venv's python
    scripts = list(folder.glob("*/*_submission.sh"))
    assert len(scripts) == 1, scripts
    array_id = scripts[0].parent.name
    script = scripts[0].read_text()
    assert "#SBATCH --array=0-1" in script and "#SBATCH --partition=debug" in script, script
    assert f"{sys.executable} -u -m submitit.core._submit" in script
    task_dirs = sorted(p.name for p in folder.glob(f"{array_id}_*"))
    assert task_dirs == [f"{array_id}_0", f"{array_id}_1"]

    # submitit returns as soon as each task has pickled its result, so the tasks may still be ending
    states = wait_for_states(task_dirs, timeout=60)
    assert states == dict.fromkeys(task_dirs, "COMPLETED"), f"{states}\n{_submitit_logs(folder)}"
    for num, beta in enumerate(BETAS):
        task = f"{array_id}_{num}"
        # Slurm ran it (scontrol keeps finished jobs for MinJobAge=300 s; no sacct here)
        info = job_info(task)
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", info
        assert (info["ArrayJobId"], info["ArrayTaskId"]) == (array_id, str(num)), info
        assert info["Partition"] == "debug" and info["StdOut"].startswith(str(folder / task))
        # ... and submitit got the Hydra job's result back from it
        with open(folder / task / f"{task}_0_result.pkl", "rb") as f:
            kind, ret = pickle.load(f)
        assert kind == "success", ret
        assert ret.status.name == "COMPLETED" and f"stage.dpo.beta={beta}" in ret.overrides
        assert ret.hydra_cfg.hydra.job.id == task and ret.hydra_cfg.hydra.job.num == num
        log = (folder / task / f"{task}_0_log.out").read_text(errors="replace")
        assert f"JobEnvironment(job_id={task}," in log and "Job completed successfully" in log

        # the pipeline ran in that job, in-process: launcher=local, every stage under the task's job id
        run_dir = sweep / f"beta_{beta}"
        job_cfg = yaml.safe_load((sweep / str(num) / ".hydra" / "config.yaml").read_text())
        assert job_cfg["launcher"]["kind"] == "local"
        for dirname in STAGES.values():
            m = json.loads((run_dir / dirname / "manifest.json").read_text())
            assert m["status"] == "done" and m["attempts"] == 1, m
            assert m["checkpoint"] == f"{dirname}/checkpoint", m  # run-dir-relative
            assert m["slurm_job_id"] == info["JobId"], (m["slurm_job_id"], info["JobId"])
        dpo_cfg = json.loads((run_dir / "03_dpo" / "config.json").read_text())
        assert dpo_cfg["beta"] == float(beta)

    # same upstream (fingerprints), different DPO beta -> different final weights
    runs = [sweep / f"beta_{b}" for b in BETAS]
    fps = {json.loads((r / "01_sft" / "manifest.json").read_text())["fingerprint"] for r in runs}
    assert len(fps) == 1
    a, b = (load_file(r / "03_dpo" / "checkpoint" / "model.safetensors") for r in runs)
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a), "beta changed nothing"
    assert "submitted:" not in out.stdout  # not posttrain's own launcher=slurm chain


def test_failing_sweep_point_returns_its_error_instead_of_hanging(tmp_path):
    """A PosttrainError inside a submitit task is raised (not sys.exit), so the parent gets it back."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "posttrain.cli",
        "run",
        "-m",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=debug",
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        f"hydra.sweep.dir={sweep}",
        "pipeline=nano2_smoke",
        f"run_dir={sweep}/run",
        "stage.sft.max_steps=1,2",
        "stage.sft.input=/nonexistent/checkpoint",  # fails in validation, before any training
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    except subprocess.TimeoutExpired:
        cancel([p.name for p in (sweep / ".submitit").glob("*_*") if p.is_dir()])
        pytest.fail("the sweep hung on a failed task instead of returning its error", pytrace=False)
    assert out.returncode != 0
    assert "/nonexistent/checkpoint" in out.stdout + out.stderr, _quiet(out.stderr)[-3000:]
