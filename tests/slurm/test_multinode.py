"""A 2-node stage on a real 2-node Slurm cluster: the rendered ``srun`` + ``torchrun`` rendezvous.

The cluster (``slurm_cluster_2nodes``) is two slurmd daemons on this host, nodes ``node1`` and
``node2``, separate from the session's single-node cluster.  The job is rendered and submitted by
``submit_chain`` exactly as ``launcher=slurm launcher.nodes=2`` does (``SlurmJobSpec`` with the
launcher's ``torchrun``); each rank writes what it saw (``jobs/allreduce_job.py``).  What this cannot
show: a network between machines (both nodes share one loopback), GPUs, or NCCL.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest

from posttrain.launch.slurm import SlurmJobSpec, cancel, job_info, job_states, submit_chain

pytestmark = [pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
JOBS = Path(__file__).resolve().parent / "jobs"
DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "UNKNOWN"}


def _job_logs(log_dir: Path) -> str:
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')}" for p in sorted(log_dir.glob("*")))


def test_two_node_stage_forms_one_torchrun_world(tmp_path, slurm_cluster_2nodes):
    pytest.importorskip("torch")
    name = f"mn-{uuid.uuid4().hex[:6]}"
    out, logs = tmp_path / "ranks", tmp_path / "logs"
    out.mkdir()
    spec = SlurmJobSpec(
        name=name,
        command=[sys.executable, str(JOBS / "allreduce_job.py"), str(out)],
        workdir=tmp_path,
        log_dir=logs,
        nodes=2,
        nproc_per_node=1,
        cpus_per_task=1,
        mem="1G",
        time="00:05:00",
        env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        torchrun=[sys.executable, "-m", "torch.distributed.run"],  # as posttrain.launch.slurm_pipeline
    )
    t0 = time.monotonic()
    (job_id,) = submit_chain([spec], script_dir=tmp_path / "scripts")
    script = (tmp_path / "scripts" / f"{name}.sbatch").read_text()
    assert "srun --nodes=2 --ntasks-per-node=1" in script
    assert "torch.distributed.run --nnodes 2 --nproc-per-node 1" in script
    try:
        deadline = time.monotonic() + 150
        state = job_states([job_id])[job_id]
        while state not in DONE:
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} still {state} after 150 s\n{_job_logs(logs)}")
            time.sleep(0.5)
            state = job_states([job_id])[job_id]
        info = job_info(job_id)
    finally:
        cancel([job_id])
    elapsed = time.monotonic() - t0
    assert state == "COMPLETED", f"{state}\n{_job_logs(logs)}"
    assert info.get("NumNodes") == "2" and info.get("NodeList") == "node[1-2]", info

    records = [json.loads(p.read_text()) for p in sorted(out.glob("rank-*.json"))]
    assert len(records) == 2, _job_logs(logs)
    assert sorted(r["rank"] for r in records) == [0, 1]
    assert {r["world_size"] for r in records} == {2}
    # one torchrun agent per Slurm node, each its own node of the elastic world
    assert sorted(r["slurm_nodeid"] for r in records) == [0, 1]
    assert sorted(r["slurmd_nodename"] for r in records) == ["node1", "node2"]
    assert sorted(r["group_rank"] for r in records) == [0, 1]
    assert {r["local_rank"] for r in records} == {0}
    # the rendezvous id is the Slurm job id (--rdzv-id "$SLURM_JOB_ID")
    assert {r["run_id"] for r in records} == {job_id}
    assert {r["slurm_job_id"] for r in records} == {job_id}
    # collectives crossed the nodes: 1 + 2, and every rank saw both node ids in rank order
    assert {r["all_reduce_sum"] for r in records} == {3.0}
    by_rank = {r["rank"]: r["slurm_nodeid"] for r in records}
    for r in records:
        assert r["all_gather_node_ids"] == [by_rank[0], by_rank[1]], records
    print(f"2-node torchrun world on {info['NodeList']}: all_reduce 3.0 on both ranks; {elapsed:.1f}s")
