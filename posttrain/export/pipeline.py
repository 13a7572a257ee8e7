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
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from posttrain.export.jobs import stage_job, write_submit
from posttrain.export.nemo_rl_map import ALGOS, NotExportable


def export_pipeline(cfg: DictConfig) -> dict[str, Any]:
    """Prepare ``cfg.run_dir`` and write the NeMo-RL jobs; returns what ``export.json`` holds."""
    from posttrain.models import load_tokenizer
    from posttrain.pipeline.plan import INIT
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
            pairs = prep.dirs[p.cfg.dataset_from] / "pairs" if p.kind == "dpo" else None
            try:
                summary = stage_job(
                    p,
                    cfg,
                    model=model,
                    run_dir=prep.run_dir,
                    seed=stage_seed(p, int(cfg.seed)),
                    pairs_dir=pairs,
                    tokenizer=tok,
                )
            except NotExportable as e:
                not_exported[p.name] = str(e)
                continue
            exported[p.name] = Path(summary["job_dir"])
            jobs.append({**summary, "after": after})
        write_submit(root / "submit.sh", jobs, launcher)
        report = {
            "run_dir": str(prep.run_dir),
            "nemo_rl_dir": launcher["nemo_rl_dir"],
            "jobs": jobs,
            "not_exported": not_exported,
        }
        (root / "export.json").write_text(json.dumps(report, indent=2))
        return report
    finally:
        if prep.lock is not None:
            prep.lock.close()
