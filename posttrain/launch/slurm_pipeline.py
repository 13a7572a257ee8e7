"""``launcher=slurm``: submit one sbatch job per unfinished stage, chained ``afterok``.

The submitting process validates the config, builds the data and the init checkpoint (cheap and
cached), and computes every stage's fingerprint; stages already ``done`` with the same fingerprint
are not resubmitted. Each job re-runs the same ``posttrain run`` command with
``launcher.kind=local only_stage=<name>``, so jobs chain through exactly the manifests,
fingerprints and checkpoints of a local run. A failed stage marks itself ``failed`` and Slurm
cancels its dependents (``--kill-on-invalid-dep=yes``); on USR1 a training stage saves, requeues
itself and resumes (``posttrain.launch.preemption``).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from posttrain import PosttrainError
from posttrain.launch.slurm import SlurmJobSpec, SlurmSubmitError, submit_chain
from posttrain.pipeline.manifest import Manifest, load_manifest, save_manifest
from posttrain.pipeline.runner import Prepared

_DROP = ("launcher=", "launcher.kind=", "only_stage=", "+only_stage=", "launched_resume=", "hydra/launcher=")
_SPEC_FIELDS = ("partition", "account", "nodes", "gpus_per_node", "cpus_per_task", "mem", "time")


def stage_command(overrides: list[str], stage: str) -> list[str]:
    """The job's command: the same run with the local launcher, restricted to one stage."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(_DROP)]
    return [sys.executable, "-m", "posttrain.cli", "run", *kept, "launcher.kind=local", f"only_stage={stage}"]


def job_spec(cfg: DictConfig, stage: str, overrides: list[str], workdir: str) -> SlurmJobSpec:
    launcher: dict[str, Any] = OmegaConf.to_container(cfg.launcher, resolve=True)
    per_stage = dict(launcher.get("stage_overrides", {}).get(stage, {}))
    unknown = set(per_stage) - set(launcher)
    if unknown:
        raise PosttrainError(f"launcher.stage_overrides.{stage}: unknown field(s) {sorted(unknown)}")
    s = {**launcher, **per_stage}
    if not s["partition"]:
        raise PosttrainError("launcher.partition: required for launcher=slurm")
    return SlurmJobSpec(
        name=f"pt-{stage}",
        command=stage_command(overrides, stage),
        workdir=workdir,
        log_dir=f"{cfg.run_dir}/slurm",
        nproc_per_node=s["nproc"],
        signal_seconds=s["signal_seconds"],
        container_image=s["container_image"],
        container_mounts=s["container_mounts"],
        extra_sbatch=list(s["extra_sbatch"]),
        torchrun=[sys.executable, "-m", "torch.distributed.run"],
        **{k: s[k] for k in _SPEC_FIELDS},
    )


def submit_pipeline(cfg: DictConfig, prep: Prepared, overrides: list[str], workdir: str) -> dict[str, str]:
    """Submit the unfinished stages; returns {stage: job id}. Raises with sbatch's own message."""
    todo = [p for p in prep.plan if not prep.is_done(p.name)]
    if not todo:
        return {}
    specs = [job_spec(cfg, p.name, overrides, workdir) for p in todo]
    try:
        ids = submit_chain(specs, script_dir=prep.run_dir / "slurm")
    except SlurmSubmitError as e:
        raise PosttrainError(f"slurm: {e}") from None
    for p, job_id in zip(todo, ids):
        old = load_manifest(prep.dirs[p.name])
        m = old if old and old.fingerprint == prep.fps[p.name] else Manifest(stage=p.name, kind=p.kind)
        if m.status != "running":
            m.status = "pending"
        m.fingerprint, m.slurm_job_id, m.parent = prep.fps[p.name], job_id, p.input
        m.outputs = {**m.outputs, "submitted_at": time.time()}
        save_manifest(prep.dirs[p.name], m)
    return {p.name: j for p, j in zip(todo, ids)}
