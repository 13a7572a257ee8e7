"""One reader of a run directory: its stages in order, their manifests, metrics and final checkpoint.

``posttrain status``, ``posttrain report``, the demo claims, ``bench/budget.py`` and the run differ all
read runs through this class, so they agree on the stage order, on what an unreadable manifest is (a
row with its error, never a crash that hides the other stages) and on a torn ``metrics.jsonl`` line (the
last line cut short by a killed writer is skipped and counted; a corrupt line before it is an error
naming the file and line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain import PosttrainError
from posttrain.pipeline.manifest import Manifest, ManifestError, load_manifest, read_json

INIT_DIR = "00_init"
NOT_TRAINED = ("init", "eval")  # 00_init is the starting model; eval stages only re-point to their input


@dataclass(frozen=True)
class StageEntry:
    dir: Path
    manifest: Manifest | None  # None: not started yet, or unreadable (then ``error`` says why)
    error: str | None = None

    @property
    def name(self) -> str:
        return self.manifest.stage if self.manifest else self.dir.name.split("_", 1)[-1]

    @property
    def status(self) -> str:
        return "unreadable" if self.error else (self.manifest.status if self.manifest else "pending")


def read_metrics(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """Records of a ``metrics.jsonl`` and how many torn lines were skipped (only the last line can be
    torn: a writer killed mid-append); any other bad line raises ``ManifestError`` naming file:line."""
    path = Path(path)
    if not path.exists():
        return [], 0
    lines = [(i, s) for i, s in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if s.strip()]
    out, torn = [], 0
    for k, (i, line) in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if k == len(lines) - 1:
                torn += 1
                continue
            raise ManifestError(f"{path}:{i}: not a JSON record ({e.msg})") from None
    return out, torn


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def order(self) -> list[str]:
        """``00_init`` and the stage dirs in ``pipeline.json`` order; without a readable one, every
        ``NN_*`` dir in name order."""
        try:
            names = list(read_json(self.path / "pipeline.json")["stages"])
        except (OSError, ManifestError, KeyError, TypeError):
            names = sorted(p.name for p in self.path.glob("[0-9][0-9]_*") if p.is_dir())
        extra = sorted(
            p.parent.name
            for p in self.path.glob("[0-9][0-9]_*/manifest.json")
            if p.parent.name not in names and p.parent.name != INIT_DIR
        )
        return list(dict.fromkeys([INIT_DIR, *names, *extra]))

    def claims(self) -> list[dict[str, str]]:
        """The claims the run's pipeline declared (``pipeline.claims``, recorded in ``pipeline.json``)."""
        try:
            return list(read_json(self.path / "pipeline.json").get("claims") or [])
        except (OSError, ManifestError, AttributeError):
            return []

    def stages(self) -> list[StageEntry]:
        out = []
        for name in self.order():
            d = self.path / name
            try:
                out.append(StageEntry(d, load_manifest(d)))
            except ManifestError as e:
                out.append(StageEntry(d, None, str(e)))
        return out

    def done(self) -> list[Manifest]:
        return [e.manifest for e in self.stages() if e.manifest and e.manifest.status == "done"]

    def metrics(self, entry: StageEntry) -> tuple[list[dict[str, Any]], int]:
        return read_metrics(entry.dir / "metrics.jsonl")

    def final_checkpoint(self, hint: str = "") -> dict[str, Any]:
        """The last stage (in order) that is neither init nor eval and whose manifest says ``done``;
        ``PosttrainError`` when there is none. ``unfinished_later_stages`` names the later training
        stages that are not done."""
        hint = f"; {hint}" if hint else ""
        if not (self.path / "pipeline.json").exists():
            raise PosttrainError(f"{self.path}: no pipeline run there (no pipeline.json){hint}")
        unfinished = []
        for e in reversed(self.stages()):
            m = e.manifest
            if m is not None and m.kind in NOT_TRAINED:
                continue
            if m is None or m.status != "done":
                unfinished.append(f"{e.dir.name} ({e.status})")
                continue
            # The manifest's path is relative to where `posttrain run` ran; the stage dir's own
            # `checkpoint` (a dir, or a relative symlink for pass-through stages) works in a copied run dir.
            ckpt = e.dir / "checkpoint" if (e.dir / "checkpoint").exists() else Path(m.checkpoint or "")
            if not m.checkpoint or not ckpt.exists():
                raise PosttrainError(
                    f"{e.dir}: stage done but its checkpoint {m.checkpoint!r} is missing{hint}"
                )
            return {
                "path": str(ckpt),
                "stage": m.stage,
                "stage_dir": e.dir.name,
                "kind": m.kind,
                "fingerprint": m.fingerprint,
                "manifest_checkpoint": m.checkpoint,
                "finished_at": m.finished_at,
                "unfinished_later_stages": unfinished[::-1],
            }
        raise PosttrainError(
            f"{self.path}: no finished training stage ({', '.join(unfinished) or 'none'}){hint}"
        )
