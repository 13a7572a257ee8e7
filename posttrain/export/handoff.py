"""``stage.<name>.backend=nemo_rl``: the stage writes its NeMo-RL job and stops; a rerun takes the output.

First run: the stage writes ``<run_dir>/nemo_rl/<NN>_<stage>/`` (``posttrain.export.nemo_rl``: config,
data, ``command.sh``, and a one-job ``submit.sh``) from its resolved input checkpoint, and fails with a
one-line message saying how to run it. The job trains on NeMo-RL and converts its last step to
``hf/``. A rerun of the same command (same fingerprint, so the stage resumes) finds ``hf/config.json``
and finishes the stage with that checkpoint (a symlink, like the preference stage's pass-through);
the stages after it then run as usual. Under ``launcher=slurm`` the three steps are three jobs chained
``afterok`` (``posttrain.launch.slurm_pipeline``): this stage with ``nemo_rl_write_only=true`` (writes
the job, leaves the stage ``pending``), NeMo-RL's ``ray.sub`` running ``command.sh``, and this stage
again, which takes ``hf/``.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from posttrain import PosttrainError
from posttrain.export.jobs import stage_job, write_submit
from posttrain.stages.base import HandedOff, StageInputs, StageOutputs, link_checkpoint


class NemoRLJobPending(PosttrainError):
    """The stage's NeMo-RL job is written but has not produced its checkpoint yet."""


def run(p: Any, cfg: Any, inputs: StageInputs) -> StageOutputs:
    run_dir = inputs.stage_dir.parent
    job_dir = run_dir / "nemo_rl" / p.dirname
    hf = job_dir / "hf"
    if (hf / "config.json").exists():
        ckpt = link_checkpoint(str(hf), inputs.checkpoint_dir)
        return StageOutputs(
            checkpoint=ckpt, metrics={"backend": "nemo_rl"}, outputs={"nemo_rl_job": str(job_dir)}
        )
    from posttrain.models import load_tokenizer

    pairs = inputs.datasets[p.cfg.dataset_from] / "pairs" if p.kind == "dpo" else None
    tok = load_tokenizer(inputs.checkpoint, trust_remote_code=inputs.trust_remote_code)
    summary = stage_job(
        p, cfg, model=inputs.checkpoint, run_dir=run_dir, seed=inputs.seed, pairs_dir=pairs, tokenizer=tok
    )
    write_submit(job_dir / "submit.sh", [{**summary, "after": None}], OmegaConf.to_container(cfg.launcher))
    if cfg.get("nemo_rl_write_only"):  # the Slurm launcher submitted the job after this one
        raise HandedOff(f"wrote its NeMo-RL job to {job_dir}", {"nemo_rl_job": str(job_dir)})
    raise NemoRLJobPending(
        f"stage {p.name}: backend=nemo_rl wrote its NeMo-RL job to {job_dir}; run `bash {job_dir}/submit.sh` "
        f"(or `bash {job_dir}/command.sh` inside an allocation), then rerun this command to take {hf}"
    )
