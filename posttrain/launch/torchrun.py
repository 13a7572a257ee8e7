"""``launcher=torchrun``: run the training stages as ``launcher.nproc`` processes on this node.

The driver does the bookkeeping (stage dir, ``running`` manifest, resume decision) and then starts
``python -m torch.distributed.run --nproc-per-node N -m posttrain.cli run ... only_stage=<name>``;
inside, the HF Trainer uses DDP (gloo on CPU, NCCL on GPU) and rank 0 writes the checkpoint and the
final manifest. Generation-heavy stages (preference, eval) and merge run in the driver.
Each process keeps ``per_device_train_batch_size``, so the global batch is nproc times larger.
"""

from __future__ import annotations

import os
import subprocess
import sys

from omegaconf import DictConfig

from posttrain import PosttrainError
from posttrain.launch.slurm_pipeline import stage_command
from posttrain.pipeline.runner import Prepared, begin_stage, run_stage

DISTRIBUTED_KINDS = ("sft", "dpo", "grpo", "distill")


def run_with_torchrun(cfg: DictConfig, prep: Prepared, overrides: list[str]) -> None:
    nproc = int(cfg.launcher.nproc)
    for p in prep.plan:
        if cfg.get("only_stage") and p.name != cfg.only_stage:
            continue
        if prep.is_done(p.name):
            continue
        if p.kind not in DISTRIBUTED_KINDS or nproc == 1:
            run_stage(p, cfg, prep)
            continue
        _, resume = begin_stage(p, prep)
        cmd = [*stage_command(overrides, p.name), f"launched_resume={'true' if resume else 'false'}"]
        torchrun = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        rc = subprocess.run([*torchrun, "-m", *cmd[2:]], env=env).returncode
        if rc != 0 or not prep.is_done(p.name):
            raise PosttrainError(
                f"stage {p.name}: torchrun with {nproc} processes failed (exit {rc}); see its manifest"
            )
