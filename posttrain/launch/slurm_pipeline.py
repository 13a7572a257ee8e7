"""``launcher=slurm``: submit one sbatch job per unfinished stage, chained ``afterok``.

The submitting process validates the config, builds the data and the init checkpoint (cheap and
cached), and computes every stage's fingerprint; stages already ``done`` with the same fingerprint
are not resubmitted. Each job re-runs the same ``posttrain run`` command with
``launcher.kind=local only_stage=<name>``, so jobs chain through exactly the manifests,
fingerprints and checkpoints of a local run. A failed stage marks itself ``failed`` and Slurm
cancels its dependents (``--kill-on-invalid-dep=yes``); on USR1 a training stage saves, requeues
itself and resumes (``posttrain.launch.preemption``).

A ``backend=nemo_rl`` stage is three jobs in the chain (``posttrain.export.handoff``): the stage with
``nemo_rl_write_only=true`` writes its NeMo-RL job from its now-finished input (CPU, one task); NeMo-RL's
``<nemo_rl_dir>/ray.sub`` runs that job's ``command.sh`` on the stage's nodes and GPUs (``COMMAND``,
``CONTAINER``, ``MOUNTS`` in its environment, as NeMo-RL documents); then the stage runs again and takes
the converted ``hf/`` checkpoint. Once ``hf/`` exists only the last job is submitted.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from pathlib import Path
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


def nemo_rl_specs(cfg: DictConfig, p: Any, spec: SlurmJobSpec, job_dir: Path) -> list[SlurmJobSpec]:
    """The write -> ray.sub -> collect jobs of a ``backend=nemo_rl`` stage (just collect once ``hf/`` exists)."""
    cpu = {"nodes": 1, "nproc_per_node": 1, "gpus_per_node": 0}
    collect = dataclasses.replace(spec, **cpu)
    if (job_dir / "hf" / "config.json").exists():
        return [collect]
    ray_sub = Path(str(cfg.launcher.nemo_rl_dir)) / "ray.sub"
    if not ray_sub.is_file():
        raise PosttrainError(
            f"launcher.nemo_rl_dir: {ray_sub} not found; stage {p.name} (backend=nemo_rl) is submitted "
            "through NeMo-RL's ray.sub, so a NeMo-RL checkout must be readable where you submit"
        )
    write = dataclasses.replace(
        spec, name=f"{spec.name}-write", command=[*spec.command, "nemo_rl_write_only=true"], **cpu
    )
    env = {"COMMAND": f"bash {shlex.quote(str(job_dir / 'command.sh'))}", "NEMO_RL_DIR": str(ray_sub.parent)}
    if cfg.launcher.container_image:
        env["CONTAINER"] = str(cfg.launcher.container_image)
    if cfg.launcher.container_mounts:
        env["MOUNTS"] = str(cfg.launcher.container_mounts)
    ray = dataclasses.replace(
        spec,
        name=f"{spec.name}-nemo-rl",
        command=env["COMMAND"],
        script=str(ray_sub),
        workdir=str(ray_sub.parent),
        env=env,
    )
    return [write, ray, collect]


def submit_pipeline(cfg: DictConfig, prep: Prepared, overrides: list[str], workdir: str) -> dict[str, str]:
    """Submit the unfinished stages; returns {stage: job id} (a stage's last job). Raises with sbatch's
    own message."""
    todo = [p for p in prep.plan if not prep.is_done(p.name)]
    if not todo:
        return {}
    per_stage: list[list[SlurmJobSpec]] = []
    for p in todo:
        spec = job_spec(cfg, p.name, overrides, workdir)
        if p.cfg.get("backend") == "nemo_rl":
            per_stage.append(nemo_rl_specs(cfg, p, spec, prep.run_dir / "nemo_rl" / p.dirname))
        else:
            per_stage.append([spec])
    try:
        all_ids = submit_chain([s for group in per_stage for s in group], script_dir=prep.run_dir / "slurm")
    except SlurmSubmitError as e:
        raise PosttrainError(f"slurm: {e}") from None
    ids, jobs, i = [], [], 0
    for group in per_stage:
        jobs.append([[s.name, j] for s, j in zip(group, all_ids[i : i + len(group)])])  # in chain order
        i += len(group)
        ids.append(all_ids[i - 1])
    for p, job_id, stage_jobs in zip(todo, ids, jobs):
        old = load_manifest(prep.dirs[p.name])
        m = old if old and old.fingerprint == prep.fps[p.name] else Manifest(stage=p.name, kind=p.kind)
        if m.status != "running":
            m.status = "pending"
        m.fingerprint, m.slurm_job_id, m.parent = prep.fps[p.name], job_id, p.input
        m.outputs = {**m.outputs, "submitted_at": time.time()}
        m.outputs.pop("slurm_jobs", None)
        if len(stage_jobs) > 1:
            m.outputs["slurm_jobs"] = stage_jobs
        save_manifest(prep.dirs[p.name], m)
    return {p.name: j for p, j in zip(todo, ids)}
