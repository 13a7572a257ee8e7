"""Where a run executes and where it logs: the ``launcher`` and ``logger`` config groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from posttrain.config.fields import _f


@dataclass
class LauncherConfig:
    kind: str = _f("local", "local, torchrun or slurm.")
    nproc: int = _f(1, "Processes per node (torchrun / slurm).")
    nodes: int = _f(1, "Nodes (slurm).")
    partition: str | None = _f(None, "Slurm partition.")
    account: str | None = _f(None, "Slurm account.")
    gpus_per_node: int = _f(0, "Slurm GPUs per node.")
    cpus_per_task: int = _f(2, "Slurm CPUs per task.")
    mem: str = _f("8G", "Slurm memory per node.")
    time: str = _f("01:00:00", "Slurm time limit.")
    signal_seconds: int = _f(120, "Seconds before the time limit to send USR1 (preemption save).")
    container_image: str | None = _f(None, "Container image (pyxis).")
    container_mounts: str | None = _f(None, "Container mounts (pyxis).")
    extra_sbatch: list[str] = _f([], "Extra #SBATCH lines, verbatim.")
    nemo_rl_dir: str = _f(
        "/opt/nemo-rl", "NeMo-RL checkout that exported jobs run from (NEMO_RL_DIR overrides)."
    )
    stage_overrides: dict[str, Any] = _f({}, "Per-stage launcher overrides: {stage_name: {field: value}}.")


@dataclass
class LoggerConfig:
    kind: str = _f("jsonl", "jsonl (always written) or wandb (also logs to W&B).")
    project: str = _f("posttrain", "W&B project.")
    entity: str | None = _f(None, "W&B entity.")
    mode: str | None = _f(None, "W&B mode: online/offline/disabled; null = offline without WANDB_API_KEY.")
    tags: list[str] = _f([], "W&B tags.")
