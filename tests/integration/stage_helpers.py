"""Helpers shared by the stage tests."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from posttrain.stages.base import StageInputs


def make_inputs(
    tmp_path: Path, ckpt: str, data_dir: Path, name: str = "stage", metrics: bool = False, **kw
) -> StageInputs:
    """The inputs of one stage under ``tmp_path/<name>``; ``metrics`` adds the runner's
    ``MetricsCallback`` (so the stage writes ``metrics.jsonl``)."""
    from posttrain.tracking.jsonl import MetricsCallback

    stage_dir = tmp_path / name
    stage_dir.mkdir(parents=True, exist_ok=True)
    if metrics:
        kw["callbacks"] = [MetricsCallback(stage_dir, name), *kw.get("callbacks", [])]
    return StageInputs(name=name, stage_dir=stage_dir, checkpoint=ckpt, data_dir=data_dir, **kw)


def structured(schema, **kw):
    return OmegaConf.structured(schema(**kw))
