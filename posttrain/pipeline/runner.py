"""Run a plan: build the data, materialise the initial model, then each stage in order.

A stage is skipped when its manifest says ``done`` with the same fingerprint. A stage's
fingerprint hashes its resolved config, its inputs' fingerprints, the data fingerprint and the
code version, so changing one stage reruns it and everything downstream, and nothing upstream.
A stage found ``running``/``failed`` with the same fingerprint resumes from its last trainer
checkpoint.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from posttrain import PosttrainError
from posttrain.models import build_tiny_model, check_checkpoint, load_tokenizer, save_checkpoint
from posttrain.pipeline.fingerprint import code_version, fingerprint
from posttrain.pipeline.manifest import Manifest, load_manifest, save_manifest, write_json_atomic
from posttrain.pipeline.plan import INIT, PlannedStage, build_plan
from posttrain.stages import stage_module
from posttrain.stages.base import StageInputs
from posttrain.tracking.jsonl import MetricsCallback

log = logging.getLogger("posttrain")


def init_stage(cfg: DictConfig, run_dir: Path) -> Manifest:
    """``00_init``: the starting checkpoint (a saved tiny random model, or a reference to ``model.path``)."""
    stage_dir = run_dir / "00_init"
    model_cfg = OmegaConf.to_object(cfg.model)
    fp = fingerprint("init", model_cfg, code_version())
    m = load_manifest(stage_dir)
    if m and m.status == "done" and m.fingerprint == fp:
        return m
    m = Manifest(stage=INIT, kind="init", status="running", fingerprint=fp, started_at=time.time())
    if model_cfg.kind == "tiny":
        model, tok = build_tiny_model(model_cfg)
        m.checkpoint = str(save_checkpoint(model, tok, stage_dir / "checkpoint"))
        m.metrics = {"params": sum(p.numel() for p in model.parameters())}
    elif model_cfg.kind == "hf":
        check_checkpoint(model_cfg.path, what="model.path")
        m.checkpoint = model_cfg.path
    else:
        raise PosttrainError(f"model.kind: unknown kind {model_cfg.kind!r}; use tiny or hf")
    m.status, m.finished_at = "done", time.time()
    save_manifest(stage_dir, m)
    return m


def build_data(cfg: DictConfig, run_dir: Path, checkpoint: str) -> dict[str, Any]:
    from data_recipes.build import build_recipe

    recipe = OmegaConf.to_object(cfg.data)
    tok = None
    if recipe.tokenizer is None:
        tok = load_tokenizer(checkpoint, trust_remote_code=cfg.model.trust_remote_code)
    return build_recipe(recipe, run_dir / "data", tokenizer=tok)


def _resolve(ref: str, done: dict[str, Manifest], what: str) -> tuple[str, str]:
    """(checkpoint path, fingerprint) of a stage name or an external path / hub id."""
    if ref in done:
        return done[ref].checkpoint, done[ref].fingerprint
    check_checkpoint(ref, what=what)
    return ref, fingerprint("external", ref)


def stage_fingerprint(p: PlannedStage, input_fps: dict[str, str], data_fp: str) -> str:
    mod = stage_module(p.kind)
    return fingerprint(
        p.kind, OmegaConf.to_container(p.cfg, resolve=True), input_fps, data_fp, code_version(mod)
    )


def run_stage(
    p: PlannedStage,
    cfg: DictConfig,
    run_dir: Path,
    done: dict[str, Manifest],
    data: dict[str, Any],
    dirs: dict[str, Path],
) -> Manifest:
    stage_dir = run_dir / p.dirname
    ckpt, in_fp = _resolve(p.input, done, f"stage.{p.name}.input")
    fps = {"input": in_fp}
    ckpts: dict[str, str] = {}
    datasets: dict[str, Path] = {}
    for role, ref in p.refs.items():
        path, fps[role] = _resolve(ref, done, f"stage.{p.name}.{role}")
        ckpts[role] = path
        if ref in done:
            datasets[ref] = dirs[ref]
    fp = stage_fingerprint(p, fps, data["fingerprint"])
    old = load_manifest(stage_dir)
    if old and old.status == "done" and old.fingerprint == fp:
        log.info("stage %s: done (fingerprint %s), skipping", p.name, fp[:10])
        return old
    resume = bool(old and old.fingerprint == fp and old.status in ("running", "failed"))
    if not resume and stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stage_dir / "config.json", OmegaConf.to_container(p.cfg, resolve=True))
    m = Manifest(
        stage=p.name,
        kind=p.kind,
        status="running",
        fingerprint=fp,
        parent=p.input,
        started_at=time.time(),
        inputs={"checkpoint": ckpt, **ckpts},
        attempts=(old.attempts if resume and old else 0) + 1,
        wandb_run_id=old.wandb_run_id if resume and old else None,
    )
    save_manifest(stage_dir, m)
    inputs = StageInputs(
        name=p.name,
        stage_dir=stage_dir,
        checkpoint=ckpt,
        data_dir=run_dir / "data",
        seed=int(cfg.seed),
        trust_remote_code=bool(cfg.model.trust_remote_code),
        dtype=str(cfg.model.dtype),
        datasets=datasets,
        checkpoints=ckpts,
        resume=resume,
        callbacks=[MetricsCallback(stage_dir, p.name)],
        deepspeed=OmegaConf.to_container(cfg.deepspeed, resolve=True) if cfg.get("deepspeed") else None,
    )
    try:
        out = stage_module(p.kind).run(p.cfg, inputs)
    except BaseException as e:
        m.status, m.finished_at = "failed", time.time()
        m.error = f"{type(e).__name__}: {e}"
        save_manifest(stage_dir, m)
        (stage_dir / "error.log").write_text(traceback.format_exc())
        raise
    m.status, m.finished_at = "done", time.time()
    m.checkpoint, m.metrics, m.outputs = out.checkpoint, out.metrics, out.outputs
    save_manifest(stage_dir, m)
    return m


def run_pipeline(cfg: DictConfig) -> dict[str, Manifest]:
    """Validate everything first, then run the stages in order. Returns the manifests by stage name."""
    plan = build_plan(cfg)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "pipeline.json", {"stages": [p.dirname for p in plan]})
    done: dict[str, Manifest] = {INIT: init_stage(cfg, run_dir)}
    data = build_data(cfg, run_dir, done[INIT].checkpoint)
    dirs = {INIT: run_dir / "00_init"} | {p.name: run_dir / p.dirname for p in plan}
    for p in plan:
        done[p.name] = run_stage(p, cfg, run_dir, done, data, dirs)
    return done
