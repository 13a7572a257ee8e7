"""``posttrain export nemo_rl pipeline=<name> out=<dir>``: NeMo-RL jobs for every stage NeMo-RL can run.

``out`` is a posttrain run dir: the export prepares it like ``posttrain run`` does (data built, init
checkpoint written, fingerprints known) and writes ``<out>/nemo_rl/<NN>_<stage>/`` per SFT, DPO and
GRPO stage (``posttrain.export.nemo_rl``), ``<out>/nemo_rl/submit.sh`` and ``<out>/nemo_rl/export.json``.
Nothing is submitted.

Chaining: a job whose input stage was exported reads that job's ``hf/`` output and is submitted with
``--dependency=afterok:<its job id>`` (with ``--kill-on-invalid-dep=yes``, as our Slurm launcher
chains stages). A job whose input is a posttrain-only stage (preference, merge, ...) reads that
stage's checkpoint in ``out``; ``submit.sh`` refuses to submit it until the checkpoint exists. A DPO
stage needs the pairs its ``preference`` stage mined on-policy: until that stage has run in ``out``
it is listed under ``not_exported`` with the reason (and so is any stage after it that reads it).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from posttrain.export.nemo_rl import write_job
from posttrain.export.nemo_rl_map import ALGOS, NotExportable

DEFAULT_NEMO_RL_DIR = "/opt/nemo-rl"


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


def export_pipeline(cfg: DictConfig, nemo_rl_dir: str = DEFAULT_NEMO_RL_DIR) -> dict[str, Any]:
    """Prepare ``cfg.run_dir`` and write the NeMo-RL jobs; returns what ``export.json`` holds."""
    from posttrain.models import load_tokenizer
    from posttrain.pipeline.plan import INIT, world_size
    from posttrain.pipeline.runner import prepare, stage_seed

    prep = prepare(cfg)
    try:
        root = prep.run_dir / "nemo_rl"
        init_ckpt = prep.manifest(INIT).checkpoint
        tok = load_tokenizer(init_ckpt, trust_remote_code=bool(cfg.model.trust_remote_code))
        launcher = OmegaConf.to_container(cfg.launcher, resolve=True)
        exported: dict[str, Path] = {}
        jobs: list[dict[str, Any]] = []
        not_exported: dict[str, str] = {}
        kind_of = {q.name: q.kind for q in prep.plan}
        for p in prep.plan:
            if p.kind not in ALGOS:
                not_exported[p.name] = f"kind {p.kind}: runs in posttrain"
                continue
            if kind_of.get(p.input) in ALGOS and p.input not in exported:
                not_exported[p.name] = f"its input stage {p.input} was not exported"
                continue
            if p.input in exported:
                model, after = str(exported[p.input] / "hf"), p.input
            elif p.input == INIT:
                model, after = str(init_ckpt), None
            elif p.input in prep.dirs:
                m = prep.manifest(p.input)
                model = m.checkpoint if m and m.status == "done" else str(prep.dirs[p.input] / "checkpoint")
                after = None
            else:
                model, after = p.input, None  # an external path or hub id
            job_dir = root / p.dirname
            pairs = prep.dirs[p.cfg.dataset_from] / "pairs" if p.kind == "dpo" else None
            try:
                summary = write_job(
                    p.kind,
                    p.name,
                    p.cfg,
                    model_path=model,
                    data_dir=prep.run_dir / "data",
                    job_dir=job_dir,
                    seed=stage_seed(p, int(cfg.seed)),
                    nemo_rl_dir=nemo_rl_dir,
                    world=world_size(cfg),
                    dtype=str(cfg.model.dtype),
                    cluster={
                        "gpus_per_node": max(1, int(launcher["gpus_per_node"])),
                        "num_nodes": int(launcher["nodes"]),
                    },
                    pairs_dir=pairs,
                    tokenizer=tok,
                    model_type=_model_type(str(init_ckpt)),
                    wandb_project=str(cfg.logger.project),
                )
            except NotExportable as e:
                not_exported[p.name] = str(e)
                continue
            exported[p.name] = job_dir
            jobs.append({**summary, "job_dir": str(job_dir), "after": after})
        root.mkdir(parents=True, exist_ok=True)
        (root / "submit.sh").write_text(submit_script(jobs, launcher, nemo_rl_dir))
        (root / "submit.sh").chmod(0o755)
        report = {
            "run_dir": str(prep.run_dir),
            "nemo_rl_dir": nemo_rl_dir,
            "jobs": jobs,
            "not_exported": not_exported,
        }
        (root / "export.json").write_text(json.dumps(report, indent=2))
        return report
    finally:
        if prep.lock is not None:
            prep.lock.close()
