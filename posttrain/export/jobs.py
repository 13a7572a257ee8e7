"""Job directories and the submit script for NeMo-RL jobs (shared by ``posttrain export nemo_rl`` and
``backend=nemo_rl`` stages): where a stage's job lives, what it reads, and how jobs chain on Slurm."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from posttrain.export.nemo_rl import write_job


def _model_type(path: str) -> str | None:
    cfg = Path(path) / "config.json"
    return json.loads(cfg.read_text()).get("model_type") if cfg.exists() else None


def submit_script(jobs: list[dict[str, Any]], launcher: dict[str, Any], nemo_rl_dir: str) -> str:
    """``sbatch`` of NeMo-RL's ``ray.sub`` per job, chained ``afterok`` on the job it reads."""
    q = shlex.quote
    lines = [
        "#!/usr/bin/env bash",
        "# Submits the exported NeMo-RL jobs. Needs a NeMo-RL checkout (NEMO_RL_DIR) and its container",
        "# (CONTAINER, MOUNTS: see NeMo-RL's docs/cluster.md).",
        "set -euo pipefail",
        f'cd "${{NEMO_RL_DIR:-{nemo_rl_dir}}}"',
        ': "${CONTAINER:?set CONTAINER to the NeMo-RL image}"',
        f': "${{MOUNTS:={launcher.get("container_mounts") or ""}}}"',
        "declare -A job_id",
    ]
    opts = [f"--nodes={launcher['nodes']}", f"--time={launcher['time']}", "--kill-on-invalid-dep=yes"]
    if launcher["gpus_per_node"]:
        opts.append(f"--gres=gpu:{launcher['gpus_per_node']}")
    opts += [f"--{k}={launcher[k]}" for k in ("partition", "account") if launcher.get(k)]
    for j in jobs:
        name, after = j["stage"], j.get("after")
        if after is None:
            lines.append(
                f"test -e {q(j['input_checkpoint'])} || {{ echo 'stage {name}: input checkpoint "
                f"{j['input_checkpoint']} does not exist yet; run its posttrain stage first' >&2; exit 1; }}"
            )
        dep = f' --dependency=afterok:"${{job_id[{after}]}}"' if after else ""
        cmd = q(f"bash {j['job_dir']}/command.sh")
        lines.append(
            f'job_id[{name}]=$(COMMAND={cmd} CONTAINER="$CONTAINER" MOUNTS="$MOUNTS" sbatch --parsable '
            f"--job-name=pt-nemo-{name} {' '.join(opts)}{dep} ray.sub)"
        )
        lines.append(f'echo "{name} ${{job_id[{name}]}}"')
    return "\n".join(lines) + "\n"


def stage_job(
    p: Any, cfg: DictConfig, *, model: str, run_dir: Path, seed: int, pairs_dir: Path | None, tokenizer: Any
) -> dict:
    """Write ``<run_dir>/nemo_rl/<NN>_<stage>/`` for planned stage ``p`` reading checkpoint ``model``."""
    from posttrain.pipeline.plan import world_size

    launcher = cfg.launcher
    job_dir = run_dir / "nemo_rl" / p.dirname
    summary = write_job(
        p.kind,
        p.name,
        p.cfg,
        model_path=model,
        data_dir=run_dir / "data",
        job_dir=job_dir,
        seed=seed,
        nemo_rl_dir=str(launcher.nemo_rl_dir),
        world=world_size(cfg),
        dtype=str(cfg.model.dtype),
        cluster={"gpus_per_node": max(1, int(launcher.gpus_per_node)), "num_nodes": int(launcher.nodes)},
        pairs_dir=pairs_dir,
        tokenizer=tokenizer,
        model_type=_model_type(model) or _model_type(str(run_dir / "00_init" / "checkpoint")),
        wandb_project=str(cfg.logger.project),
    )
    return {**summary, "job_dir": str(job_dir)}


def write_submit(path: Path, jobs: list[dict[str, Any]], launcher: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(submit_script(jobs, launcher, str(launcher["nemo_rl_dir"])))
    path.chmod(0o755)
