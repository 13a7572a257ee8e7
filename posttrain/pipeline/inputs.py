"""What every stage shares: the initial checkpoint (``00_init``) and the built data, each reused only
while its files are the ones written (sizes and sha256 in the init manifest's ``files`` and in
``<run_dir>/data.files.json``)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from posttrain import console, models
from posttrain.models import initial, template
from posttrain.pipeline import integrity
from posttrain.pipeline.fingerprint import code_version, fingerprint
from posttrain.pipeline.manifest import (
    Manifest,
    ManifestError,
    files_digest,
    load_manifest,
    read_json,
    save_manifest,
    write_json_atomic,
)
from posttrain.pipeline.plan import INIT

log = logging.getLogger("posttrain")

DATA_RECORD = "data.files.json"


def output_problem(stage_dir: Path, m: Manifest) -> str | None:
    """Why a ``done`` stage's outputs cannot be reused (a sentence naming the file), or None."""
    if m.files:
        return integrity.verify(stage_dir, m.files)
    return integrity.check_loadable(stage_dir, m.checkpoint, m.outputs)


def init_stage(cfg: DictConfig, run_dir: Path) -> Manifest:
    """``00_init``: the starting checkpoint (see ``initial_checkpoint``), recreated when its files changed."""
    stage_dir = run_dir / "00_init"
    model_cfg = OmegaConf.to_object(cfg.model)
    fp = fingerprint("init", model_cfg, code_version(initial, template))
    m = load_manifest(stage_dir)
    if m and m.status == "done" and m.fingerprint == fp:
        why = output_problem(stage_dir, m)
        if why is None:
            return m
        log.warning("stage init: %s; recreating it", why)
    m = Manifest(stage=INIT, kind="init", status="running", fingerprint=fp, started_at=time.time())
    console.quiet_libraries()  # building or importing the model loads torch and transformers here
    m.checkpoint, m.metrics = models.initial_checkpoint(model_cfg, stage_dir / "checkpoint")
    m.files = integrity.record(stage_dir)
    m.status, m.finished_at = "done", time.time()
    save_manifest(stage_dir, m)
    return m


def data_problem(data_dir: Path, rec: dict | None) -> str | None:
    """Why the built data in ``data_dir`` differs from its record ``rec`` (None: intact or absent)."""
    if not (data_dir / "manifest.json").exists():
        return f"{data_dir / 'manifest.json'} is missing" if data_dir.exists() else None
    if rec is not None:
        return integrity.verify(data_dir, rec["files"])
    try:  # a run from before the record: every view the data manifest lists must exist
        views = read_json(data_dir / "manifest.json").get("views", {})
    except ManifestError as e:
        return str(e)
    missing = [v for v in views if not (data_dir / v / "dataset_dict.json").exists()]
    return f"{data_dir / missing[0]} is missing" if missing else None


def build_data(cfg: DictConfig, run_dir: Path, checkpoint: str) -> dict[str, Any]:
    """Build ``<run_dir>/data`` (or copy it from the build cache). A file changed or missing since it
    was built sends it back to the cache; if the cache's copy differs too, it is rebuilt, and the
    new bytes become the record (the stages that read the old ones then rerun)."""
    from data_recipes.build import build_recipe

    recipe = OmegaConf.to_object(cfg.data)
    tok = None
    if recipe.tokenizer is None:
        tok = models.load_tokenizer(checkpoint, trust_remote_code=cfg.model.trust_remote_code)
    data_dir, rec_path = run_dir / "data", run_dir / DATA_RECORD
    rec = read_json(rec_path) if rec_path.exists() else None
    intact = (data_dir / "manifest.json").exists()
    if why := data_problem(data_dir, rec):
        log.warning("data: %s; restoring it from the build cache", why)
        shutil.rmtree(data_dir)
        intact = False
    data = build_recipe(recipe, data_dir, tokenizer=tok)
    same = rec is not None and rec.get("fingerprint") == data["fingerprint"]
    if same and not intact and (why := integrity.verify(data_dir, rec["files"])):
        log.warning("data: the cached copy differs too (%s); rebuilding it", why)
        data = build_recipe(recipe, data_dir, tokenizer=tok, force=True)
        same = False
    if not same:
        rec = {"fingerprint": data["fingerprint"], "files": integrity.record(data_dir)}
        write_json_atomic(rec_path, rec)
    return {**data, "files_digest": files_digest(rec["files"])}
