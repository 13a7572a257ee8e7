"""Append every Trainer log line to ``<stage_dir>/metrics.jsonl`` and stop on a non-finite loss."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from posttrain import PosttrainError


class NonFiniteLossError(PosttrainError):
    pass


def check_finite(logs: dict[str, Any], stage: str) -> None:
    for key in ("loss", "train_loss"):
        v = logs.get(key)
        if isinstance(v, (int, float)) and not math.isfinite(v):
            raise NonFiniteLossError(f"stage {stage}: {key} became {v}; stopping (lower the learning rate?)")


def append_metrics(path: str | Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=float) + "\n")


class MetricsCallback(TrainerCallback):
    """Writes ``{"step", "time", **logs}`` records; raises on NaN/inf loss (rank 0 only)."""

    def __init__(self, stage_dir: str | Path, stage: str):
        self.path = Path(stage_dir) / "metrics.jsonl"
        self.stage = stage

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        check_finite(logs, self.stage)
        if state.is_world_process_zero:
            append_metrics(self.path, {"step": state.global_step, "time": time.time(), **logs})
