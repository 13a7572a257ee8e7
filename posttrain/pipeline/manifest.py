"""Stage manifests (the contract in DESIGN.md), written atomically.

Paths inside the run directory are stored run-dir-relative (``01_sft/checkpoint``), so a copied or
moved run dir points at its own files; ``load_manifest`` turns them back into paths under the
directory the manifest was read from. Paths outside the run (an external checkpoint, a hub id) are
kept as given. Manifests written before this stored absolute (or cwd-relative) paths: their old run
root is inferred from the stage's own ``<root>/<NN_stage>/checkpoint`` and remapped to the current
run dir. An unreadable manifest raises ``ManifestError`` (one line naming the file).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from posttrain import PosttrainError

STATUSES = ("pending", "running", "done", "failed")
PATH_FIELDS = ("checkpoint", "inputs", "outputs", "metrics")
# The first component of a run-relative path: a stage dir (``01_sft``) or the data dir.
_RUN_REL = re.compile(r"^(\d{2}_[\w.-]+|data)(/|$)")


class ManifestError(PosttrainError):
    """A manifest that is not valid JSON or not a manifest."""


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
    # relative path -> {"size", "sha256"} (or {"link"}) of every output file, recorded when done
    files: dict[str, Any] = field(default_factory=dict)
    # input stage (or "data") -> what this stage read from it, as a digest (see read_digest)
    upstream: dict[str, str] = field(default_factory=dict)

    @property
    def wall_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


def files_digest(files: dict[str, Any]) -> str:
    """One hash of a ``files`` record: equal records, equal bytes on disk."""
    from posttrain.pipeline.fingerprint import fingerprint

    return fingerprint("files", files)


def read_digest(m: Manifest, stage_dir: Path) -> str:
    """A hash of what later stages read from a stage (its checkpoint and its ``outputs`` paths, not
    its logs), chained with its own ``upstream``: a change anywhere before it changes this."""
    prefixes = ["checkpoint"]
    for v in m.outputs.values():
        if isinstance(v, str) and Path(v).absolute().is_relative_to(stage_dir.absolute()):
            prefixes.append(Path(v).absolute().relative_to(stage_dir.absolute()).as_posix())
    read = {k: v for k, v in m.files.items() if any(k == p or k.startswith(p + "/") for p in prefixes)}
    return files_digest({"read": read, "upstream": m.upstream})


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


def read_json(path: str | os.PathLike) -> Any:
    """``json.loads`` of a file; a parse error raises ``ManifestError`` naming the file and position."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ManifestError(
            f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
            "fix it, or delete it to rerun that stage"
        ) from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not valid JSON (not UTF-8 text); fix it, or delete it") from None


def _map_strings(obj: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_strings(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_strings(v, fn) for v in obj]
    return obj


def run_relative(value: str, run_dir: Path) -> str:
    """``value`` relative to ``run_dir`` when it names a path inside it, else ``value`` unchanged."""
    if not value or "\n" in value or len(value) > 4096:
        return value
    p = Path(value)
    for base, cand in ((run_dir.absolute(), p.absolute()), (run_dir.resolve(), p.resolve())):
        try:
            rel = cand.relative_to(base).as_posix()
        except ValueError:
            continue
        if _RUN_REL.match(rel):
            return rel
    return value


def _old_root(m: Manifest, stage_dir: Path) -> str | None:
    """The run root an old manifest's paths were written under: the prefix of its own checkpoint."""
    suffix = f"/{stage_dir.name}/checkpoint"
    ck = m.checkpoint or ""
    if ck.endswith(suffix) and not _RUN_REL.match(ck):
        return ck[: -len(suffix)]
    return None


def save_manifest(stage_dir: str | os.PathLike, m: Manifest) -> None:
    if m.status not in STATUSES:
        raise ValueError(f"manifest status must be one of {STATUSES}, got {m.status!r}")
    stage_dir = Path(stage_dir)
    data = asdict(m)
    for key in PATH_FIELDS:
        data[key] = _map_strings(data[key], lambda s: run_relative(s, stage_dir.parent))
    write_json_atomic(stage_dir / "manifest.json", data)


def load_manifest(stage_dir: str | os.PathLike) -> Manifest | None:
    """The stage's manifest with run paths under ``stage_dir.parent``; None when there is none."""
    stage_dir = Path(stage_dir)
    path = stage_dir / "manifest.json"
    if not path.exists():
        return None
    data = read_json(path)
    known = Manifest.__dataclass_fields__
    try:
        m = Manifest(**{k: v for k, v in data.items() if k in known})
    except (TypeError, AttributeError):
        raise ManifestError(f"{path}: not a stage manifest (needs at least 'stage' and 'kind')") from None
    run_dir, old = stage_dir.parent, _old_root(m, stage_dir)

    def to_path(s: str) -> str:
        if old is not None and (s == old or s.startswith(old + "/")):
            s = run_relative(s, Path(old)) if Path(old).is_absolute() else s[len(old) + 1 :]
        return str(run_dir / s) if _RUN_REL.match(s) and not os.path.isabs(s) else s

    for key in PATH_FIELDS:
        setattr(m, key, _map_strings(getattr(m, key), to_path))
    return m
