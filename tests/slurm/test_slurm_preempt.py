"""Real preemption round trips: USR1 -> checkpoint -> scontrol requeue -> restart -> resume."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from posttrain.launch.slurm import SlurmJobSpec, cancel, job_info, job_states, submit_chain

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

REPO = Path(__file__).resolve().parents[2]
JOBS = Path(__file__).resolve().parent / "jobs"


def _job_logs(log_dir: Path) -> str:
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')}" for p in sorted(log_dir.glob("*")))


def _wait_file(path: Path, job_id: str, log_dir: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        state = job_states([job_id])[job_id]
        if state not in ("PENDING", "RUNNING", "CONFIGURING"):
            pytest.fail(f"job {job_id} is {state} before {path.name} appeared\n{_job_logs(log_dir)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} not there after {timeout}s (job {job_id} {state})\n{_job_logs(log_dir)}")
        time.sleep(0.1)


def _signal_batch(job_id: str, sig: str = "USR1") -> None:
    # exactly what Slurm does at --signal=B:USR1@N before the time limit
    subprocess.run(["scancel", f"--signal={sig}", "--batch", job_id], check=True, timeout=30)


def test_usr1_checkpoint_requeue_and_resume(tmp_path, wait_for_states):
    name = f"preempt-{uuid.uuid4().hex[:6]}"
    ckpt, ready = tmp_path / "ckpt.json", tmp_path / "ready"
    spec = SlurmJobSpec(
        name=name,
        command=[sys.executable, str(JOBS / "preempt_job.py"), str(ckpt), "400", str(ready)],
        workdir=tmp_path,
        log_dir=tmp_path / "logs",
        mem="500M",
        env={"PYTHONPATH": str(REPO)},
    )
    t0 = time.monotonic()
    (job_id,) = submit_chain([spec], script_dir=tmp_path / "scripts")
    try:
        _wait_file(ready, job_id, tmp_path / "logs")
        time.sleep(0.5)  # let it make some progress (0.05 s/step on the first run)
        t_sig = time.monotonic()
        _signal_batch(job_id)
        # requeued: same job id, Restarts=1, back to PENDING (BeginTime) then RUNNING again
        states = wait_for_states(
            [job_id], done=lambda st: st[job_id] in ("COMPLETED", "FAILED", "CANCELLED"), timeout=90
        )
        t_done = time.monotonic()
    finally:
        cancel([job_id])
    log = (tmp_path / "logs" / f"{name}-{job_id}.out").read_text()
    err = (tmp_path / "logs" / f"{name}-{job_id}.err").read_text()
    assert states[job_id] == "COMPLETED", f"{states}\n{log}\n{err}"
    info = job_info(job_id)
    assert info["Restarts"] == "1", info
    # two sections in the (append-mode) log: the preempted run and the resumed run
    headers = re.findall(r"=== \[posttrain\] stage \S+ job (\d+) restart (\d+) ", log)
    assert headers == [(job_id, "0"), (job_id, "1")], log
    saved = int(re.search(r"preempted at step=(\d+); checkpoint saved", log).group(1))
    assert 0 < saved < 400
    assert "requeue_self -> True" in log
    assert f"restart_count=1 resume_from={saved}" in log, log
    assert f"finished step=400 resumed_from={saved}" in log, log
    assert "batch shell got SIGUSR1" in err, err
    print(
        f"preempted at step {saved}; signal->completed after resume {t_done - t_sig:.1f}s, "
        f"total {t_done - t0:.1f}s"
    )


def test_multiprocess_stage_relays_usr1_to_torchrun_workers(tmp_path, wait_for_states):
    pytest.importorskip("torch")
    name = f"ddp-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "ranks"
    out.mkdir()
    spec = SlurmJobSpec(
        name=name,
        command=[sys.executable, str(JOBS / "rank_job.py"), str(out)],
        workdir=tmp_path,
        log_dir=tmp_path / "logs",
        nproc_per_node=2,
        cpus_per_task=1,
        mem="2G",
        env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        torchrun=[sys.executable, "-m", "torch.distributed.run"],
    )
    script = tmp_path / "scripts" / f"{name}.sbatch"
    t0 = time.monotonic()
    (job_id,) = submit_chain([spec], script_dir=tmp_path / "scripts")
    assert "torch.distributed.run --nnodes 1 --nproc-per-node 2" in script.read_text()
    try:
        for rank in (0, 1):
            _wait_file(out / f"ready-{rank}", job_id, tmp_path / "logs", timeout=90)
        _signal_batch(job_id)
        states = wait_for_states([job_id], timeout=60)
    finally:
        cancel([job_id])
    log = (tmp_path / "logs" / f"{name}-{job_id}.out").read_text()
    err = (tmp_path / "logs" / f"{name}-{job_id}.err").read_text()
    assert states[job_id] == "COMPLETED", f"{states}\n{log}\n{err}"
    for rank in (0, 1):
        assert (out / f"done-{rank}").read_text().strip() == "usr1=True", f"{log}\n{err}"
        assert "world=2 master=" in (out / f"ready-{rank}").read_text()
    print(f"2-process torchrun stage got USR1 on both ranks; {time.monotonic() - t0:.1f}s")


def test_time_limit_signal_from_sbatch_directive(tmp_path, wait_for_states):
    """No manual scancel: Slurm itself sends USR1 (``--signal=B:USR1@55``) to a 1-minute job.

    slurmctld checks time limits on a ~30 s tick, so the signal lands 5-35 s after the start.
    """
    name = f"timelimit-{uuid.uuid4().hex[:6]}"
    ckpt, ready = tmp_path / "ckpt.json", tmp_path / "ready"
    spec = SlurmJobSpec(
        name=name,
        command=[sys.executable, str(JOBS / "preempt_job.py"), str(ckpt), "5000", str(ready)],
        workdir=tmp_path,
        log_dir=tmp_path / "logs",
        mem="500M",
        time="00:01:00",
        signal_seconds=55,
        env={"PYTHONPATH": str(REPO)},
    )
    t0 = time.monotonic()
    (job_id,) = submit_chain([spec], script_dir=tmp_path / "scripts")
    try:
        states = wait_for_states(
            [job_id],
            done=lambda st: st[job_id] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"),
            timeout=100,
        )
    finally:
        cancel([job_id])
    log = (tmp_path / "logs" / f"{name}-{job_id}.out").read_text()
    err = (tmp_path / "logs" / f"{name}-{job_id}.err").read_text()
    assert states[job_id] == "COMPLETED", f"{states}\n{log}\n{err}"
    assert job_info(job_id)["Restarts"] == "1"
    assert "batch shell got SIGUSR1" in err, err
    saved = int(re.search(r"preempted at step=(\d+); checkpoint saved", log).group(1))
    assert f"finished step=5000 resumed_from={saved}" in log, log
    print(f"time-limit USR1 at step {saved}; requeued + resumed + completed in {time.monotonic() - t0:.1f}s")
