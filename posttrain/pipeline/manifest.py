"""Stage manifests (the contract in DESIGN.md), written atomically."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("pending", "running", "done", "failed")


@dataclass
class Manifest:
    stage: str
    kind: str
    status: str = "pending"
    fingerprint: str = ""
    parent: str | None = None
    checkpoint: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    wandb_run_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    slurm_job_id: str | None = None
    attempts: int = 0

    @property
    def wall_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to a temp file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_manifest(stage_dir: str | os.PathLike, m: Manifest) -> None:
    if m.status not in STATUSES:
        raise ValueError(f"manifest status must be one of {STATUSES}, got {m.status!r}")
    write_json_atomic(Path(stage_dir) / "manifest.json", asdict(m))


def load_manifest(stage_dir: str | os.PathLike) -> Manifest | None:
    path = Path(stage_dir) / "manifest.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    known = Manifest.__dataclass_fields__
    return Manifest(**{k: v for k, v in data.items() if k in known})
