"""Run a plan: build the data, materialise the initial model, then each stage in order.

A stage is skipped when its manifest says ``done`` with the same fingerprint. A stage's
fingerprint hashes its resolved config, its inputs' fingerprints, the data's content (the views and
template it reads, ``data_recipes.fingerprint.content_hash``: a data-code change with byte-identical
output reruns nothing) and its stage module's code version, so changing one stage reruns it and everything downstream, and nothing upstream.
A stage found ``running``/``failed`` with the same fingerprint resumes from its last trainer
checkpoint.

Crash safety. ``prepare`` takes the run dir's lock (``posttrain.pipeline.lock``), then deletes what
killed writes left behind (``integrity.remove_partial``). A ``done`` stage is reused only if its
outputs are still the files it wrote (``files``: size and sha256 of each, checked on every skip)
and its inputs (the stages it read, and the data) still hold the bytes it read (``upstream``);
otherwise it reruns, and so does every later stage whose inputs then change. The built data is
checked the same way against ``<run_dir>/data.files.json`` and restored from the build cache.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from data_recipes.fingerprint import content_hash
from posttrain import PosttrainError, console
from posttrain.launch.preempt import PREEMPTED_EXIT_CODE
from posttrain.launch.preemption import preemption
from posttrain.pipeline import integrity
from posttrain.pipeline.fingerprint import code_version, fingerprint
from posttrain.pipeline.inputs import build_data, init_stage, output_problem
from posttrain.pipeline.lock import RunLock, acquire
from posttrain.pipeline.manifest import Manifest, load_manifest, read_digest, save_manifest, write_json_atomic
from posttrain.pipeline.plan import INIT, PlannedStage, build_plan, claims_of
from posttrain.stages import stage_module, stage_module_name
from posttrain.tracking.wandb import stage_run

log = logging.getLogger("posttrain")


def stage_seed(p: PlannedStage, seed: int) -> int:
    """The stage's own ``seed`` when set (e.g. a GRPO replicate on the same DPO checkpoint), else the
    run's global one."""
    own = p.cfg.get("seed")
    return int(seed if own is None else own)


def stage_fingerprint(p: PlannedStage, input_fps: dict[str, str], data_fp: str, seed: int = 0) -> str:
    """Hash of everything a stage's output depends on: its kind and resolved config, its inputs'
    fingerprints, the data views' content, the code it runs, and its seed (``stage_seed``: data order,
    sampling and the Trainer's seed; before it was hashed, ``seed=1`` on a finished run reused seed 0)."""
    cfg = OmegaConf.to_container(p.cfg, resolve=True)
    code = code_version(stage_module_name(p.kind))  # hashed from source: no import (TRL, torch) here
    return fingerprint(p.kind, cfg, input_fps, data_fp, code, {"seed": stage_seed(p, seed)})


def _ref_fingerprint(ref: str, fps: dict[str, str], what: str) -> str:
    if ref in fps:
        return fps[ref]
    from posttrain.models import check_checkpoint  # imports torch and transformers (~3 s): only when needed

    check_checkpoint(ref, what=what)  # an external path / hub id: fail before any work
    return fingerprint("external", ref)


def plan_fingerprints(plan: list[PlannedStage], init_fp: str, data_fp: str, seed: int = 0) -> dict[str, str]:
    """Every stage's fingerprint, computed before anything runs (they depend on configs only)."""
    fps = {INIT: init_fp}
    for p in plan:
        ins = {"input": _ref_fingerprint(p.input, fps, f"stage.{p.name}.input")}
        for role, ref in p.refs.items():
            ins[role] = _ref_fingerprint(ref, fps, f"stage.{p.name}.{role}")
        fps[p.name] = stage_fingerprint(p, ins, data_fp, seed)
    return fps


@dataclass
class Prepared:
    """A validated plan with its data built, its init checkpoint ready and all fingerprints known.
    Holds the run dir's lock for as long as it lives (``lock`` is None in a launcher's child)."""

    plan: list[PlannedStage]
    run_dir: Path
    data: dict[str, Any]
    fps: dict[str, str]
    dirs: dict[str, Path]
    lock: RunLock | None = None
    launched_resume: bool | None = None  # set in a torchrun launcher's child (``cfg.launched_resume``)
    _checked: dict[tuple[str, float | None], str | None] = field(default_factory=dict, repr=False)

    def manifest(self, name: str) -> Manifest | None:
        return load_manifest(self.dirs[name])

    def deps(self, name: str) -> list[str]:
        """The stages ``name`` reads (its input and its references)."""
        p = next((p for p in self.plan if p.name == name), None)
        return [d for d in ([p.input, *p.refs.values()] if p else []) if d in self.dirs]

    def upstream(self, name: str) -> dict[str, str]:
        """What ``name`` reads, as digests: the ``upstream`` a stage records when it starts."""
        out = {"data": self.data["files_digest"]} if "files_digest" in self.data else {}
        for dep in self.deps(name):
            dm = self.manifest(dep)
            out[dep] = read_digest(dm, self.dirs[dep]) if dm else ""
        return out

    def why_not_done(self, name: str) -> str | None:
        """None when stage ``name`` is done and reusable, else why not (naming the file at fault)."""
        m = self.manifest(name)
        if m is None or m.status != "done":
            return f"it is {m.status if m else 'pending'}"
        if m.fingerprint != self.fps[name]:
            return "its config changed"
        key = (name, m.finished_at)
        if key not in self._checked:
            self._checked[key] = output_problem(self.dirs[name], m)
            if self._checked[key]:
                log.warning(
                    "stage %s: %s; rerunning it (a later stage reruns if what it read changes)",
                    name,
                    self._checked[key],
                )
        if self._checked[key]:
            return self._checked[key]
        for dep in self.deps(name):
            if (why := self.why_not_done(dep)) is not None:
                return f"its input stage {dep} cannot be reused ({why})"
        now = self.upstream(name)
        changed = [k for k, v in m.upstream.items() if k in now and now[k] != v]
        if changed:
            return f"what it read from {changed[0]} has changed since it ran"
        return None

    def is_done(self, name: str) -> bool:
        return self.why_not_done(name) is None

    def mark_verified(self, name: str, m: Manifest) -> None:
        self._checked[(name, m.finished_at)] = None


def prepare(cfg: DictConfig) -> Prepared:
    plan = build_plan(cfg)
    run_dir = Path(cfg.run_dir)
    # a child of our torchrun launcher (its driver holds the lock), or a rank > 0 (rank 0 holds it)
    launched = cfg.get("launched_resume")
    child = launched is not None or not _is_main()
    lock = None if child else acquire(run_dir)
    dirs = {INIT: run_dir / "00_init"} | {p.name: run_dir / p.dirname for p in plan}
    if not child:
        for d in [run_dir, *dirs.values()]:
            integrity.remove_partial(d)
    claims = claims_of(cfg)
    write_json_atomic(run_dir / "pipeline.json", {"stages": [p.dirname for p in plan], "claims": claims})
    init = init_stage(cfg, run_dir)
    data = build_data(cfg, run_dir, init.checkpoint)
    fps = plan_fingerprints(plan, init.fingerprint, content_hash(run_dir / "data"), int(cfg.seed))
    return Prepared(plan, run_dir, data, fps, dirs, lock, launched)


def _checkpoint_of(ref: str, prep: Prepared, who: str) -> str:
    if ref not in prep.dirs:
        return ref
    if (why := prep.why_not_done(ref)) is not None:
        raise PosttrainError(f"stage {who} needs stage {ref!r}, which cannot be reused: {why}")
    return prep.manifest(ref).checkpoint


@contextmanager
def single_process_env(needed: bool):
    """DeepSpeed wants a distributed environment even for one process (else it tries MPI discovery);
    provide a single-rank one when no launcher set it, and restore the environment afterwards."""
    keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    if not needed or "RANK" in os.environ:
        yield
        return
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(
        RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    try:
        yield
    finally:
        for k in keys:
            os.environ.pop(k, None)


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def begin_stage(p: PlannedStage, prep: Prepared) -> tuple[Manifest, bool]:
    """Write the ``running`` manifest (the driver's main process only) and return it with whether the
    stage resumes: a stage whose last attempt, with this fingerprint, is ``running`` or ``failed``
    resumes. In a torchrun launcher's child the driver already decided (``prep.launched_resume``)."""
    stage_dir, fp = prep.dirs[p.name], prep.fps[p.name]
    old = load_manifest(stage_dir)
    resume = bool(old and old.fingerprint == fp and old.status in ("running", "failed"))
    if prep.launched_resume is not None:
        resume = prep.launched_resume
    m = Manifest(
        stage=p.name,
        kind=p.kind,
        status="running",
        fingerprint=fp,
        parent=p.input,
        started_at=time.time(),
        attempts=(old.attempts if old and old.fingerprint == fp else 0) + 1,
        wandb_run_id=old.wandb_run_id if resume and old else None,
        slurm_job_id=os.environ.get("SLURM_JOB_ID") or (old.slurm_job_id if old else None),
        upstream=prep.upstream(p.name),
    )
    if old and old.fingerprint == fp and "slurm_jobs" in old.outputs:  # a backend=nemo_rl stage's chain
        m.outputs = {"slurm_jobs": old.outputs["slurm_jobs"]}
    if _is_main() and prep.launched_resume is None:
        if not resume and stage_dir.exists():
            shutil.rmtree(stage_dir)
        stage_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(stage_dir / "config.json", OmegaConf.to_container(p.cfg, resolve=True))
        save_manifest(stage_dir, m)
    return m, resume


def run_stage(p: PlannedStage, cfg: DictConfig, prep: Prepared) -> Manifest:
    stage_dir = prep.dirs[p.name]
    if prep.is_done(p.name):
        log.info("stage %s: done (fingerprint %s), skipping", p.name, prep.fps[p.name][:10])
        return prep.manifest(p.name)
    console.quiet_libraries()  # torch, transformers and the stage code load here, not at CLI start-up
    from posttrain.stages.base import HandedOff, Preempted, StageInputs
    from posttrain.tracking.jsonl import MetricsCallback

    ckpt = _checkpoint_of(p.input, prep, p.name)
    ckpts = {role: _checkpoint_of(ref, prep, p.name) for role, ref in p.refs.items()}
    datasets = {ref: prep.dirs[ref] for ref in p.refs.values() if ref in prep.dirs}
    m, resume = begin_stage(p, prep)
    m.inputs = {"checkpoint": ckpt, **ckpts}
    deepspeed = OmegaConf.to_container(cfg.deepspeed, resolve=True) if cfg.get("deepspeed") else None
    save = save_manifest if _is_main() else (lambda *_: None)
    parent = prep.manifest(p.input) if p.input in prep.dirs else None
    tracking = stage_run(
        cfg.logger,
        run_dir=prep.run_dir,
        stage=p.name,
        kind=p.kind,
        config={
            "stage": OmegaConf.to_container(p.cfg, resolve=True),
            "model": OmegaConf.to_container(cfg.model, resolve=True),
            "seed": stage_seed(p, int(cfg.seed)),
            "fingerprint": prep.fps[p.name],
        },
        run_id=m.wandb_run_id,
        parent_artifact=parent.outputs.get("wandb_artifact") if parent else None,
        checkpoint_dir=stage_dir / "checkpoint",
    )
    with tracking as wb, preemption() as pre, single_process_env(deepspeed is not None):
        if wb.run_id != m.wandb_run_id:  # stored before training, so a resumed stage continues the run
            m.wandb_run_id = wb.run_id
            save(stage_dir, m)
        inputs = StageInputs(  # built once everything it carries is known; stages cannot change it
            name=p.name,
            stage_dir=stage_dir,
            checkpoint=ckpt,
            data_dir=prep.run_dir / "data",
            seed=stage_seed(p, int(cfg.seed)),
            trust_remote_code=bool(cfg.model.trust_remote_code),
            dtype=str(cfg.model.dtype),
            datasets=datasets,
            checkpoints=ckpts,
            resume=resume,
            report_to=list(wb.report_to),
            callbacks=[MetricsCallback(stage_dir, p.name), *pre.callbacks],
            deepspeed=deepspeed,
            preempted=pre.preempted,
        )
        try:
            if p.cfg.get("backend") == "nemo_rl":
                from posttrain.export import handoff

                out = handoff.run(p, cfg, inputs)
            else:
                out = stage_module(p.kind).run(p.cfg, inputs)
        except HandedOff as e:
            m.status, m.error, m.outputs = "pending", None, {**m.outputs, **e.outputs}
            if m.outputs.get("slurm_jobs"):  # status follows the job that will finish the stage
                m.slurm_job_id = m.outputs["slurm_jobs"][-1][1]
            save(stage_dir, m)
            log.info("stage %s: %s", p.name, e)
            return m
        except Preempted as e:
            m.error = f"preempted at step {e.step}; checkpoint saved, requeued"
            save(stage_dir, m)
            pre.requeue()
            raise SystemExit(PREEMPTED_EXIT_CODE) from None
        except BaseException as e:
            m.status, m.finished_at = "failed", time.time()
            m.error = f"{type(e).__name__}: {e}"
            save(stage_dir, m)
            if _is_main():
                (stage_dir / "error.log").write_text(traceback.format_exc())
            raise
        wb.checkpoint_dir = Path(out.checkpoint) if out.checkpoint else None
        wb.summary(out.metrics)
    m.checkpoint, m.metrics = out.checkpoint, out.metrics
    m.outputs = {**out.outputs, **({"wandb_artifact": wb.artifact} if wb.artifact else {})}
    if _is_main():
        m.files = integrity.record(stage_dir)
    m.status, m.finished_at, m.error = "done", time.time(), None
    save(stage_dir, m)
    prep.mark_verified(p.name, m)
    return m


def run_pipeline(cfg: DictConfig, prep: Prepared | None = None) -> dict[str, Manifest]:
    """Validate everything first, then run the stages in order (or just ``cfg.only_stage``)."""
    prep = prep or prepare(cfg)
    only = cfg.get("only_stage")
    if only and only not in prep.fps:
        raise PosttrainError(f"only_stage: {only!r} is not a stage of this pipeline")
    out = {}
    for p in prep.plan:
        if only and p.name != only:
            continue
        out[p.name] = run_stage(p, cfg, prep)
    return out
