"""Prove that a finished stage's outputs are still the files it wrote, and clean up after kills.

``record(dir)`` lists every output file under a stage (or data) dir as ``{relpath: {size, sha256}}``
(a symlink as ``{link: target}``), skipping the manifest itself, the HF Trainer's resume
checkpoints (``trainer/``, not an output once the stage is done), error logs and temp files.
``verify(dir, files)`` returns the first problem (missing, size or hash changed, link changed) as a
sentence naming the file, or None. A link a copy turned into a directory (``shutil.copytree``,
``cp -L``) passes when that directory holds the same files as the link's target. Files added later
are ignored: ``datasets`` writes
``cache-*.arrow`` files next to a dataset whenever a later stage filters it.

``check_loadable`` is the fallback for manifests written before ``files`` existed: the checkpoint
has a config and every ``*.safetensors`` file parses (a file cut short fails ``safe_open``), and
every output path inside the run exists.

``remove_partial(dir)`` deletes what a killed write leaves behind: ``save_checkpoint``'s
``.checkpoint-*`` temp dirs, ``write_json_atomic``'s ``.<name>.json-*`` files, the data build's
``.data.tmp-*``/``.data.old-*`` dirs, and trainer checkpoints without a readable
``trainer_state.json`` (written last by the Trainer). Call it only while holding the run lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger("posttrain")

SKIP_TOP = {"manifest.json", "trainer", "error.log"}
TEMP = re.compile(r"^\.(checkpoint-.+|[\w.-]+\.json-.+|[\w-]+\.(tmp|old)-.+)$")
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def record(root: str | os.PathLike, skip_top: set[str] = SKIP_TOP) -> dict[str, Any]:
    """``{relpath: {"size", "sha256"}}`` for files, ``{relpath: {"link"}}`` for symlinks, under ``root``."""
    root = Path(root)
    out: dict[str, Any] = {}
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        top = rel_dir == Path(".")
        for d in list(dirnames):
            p = Path(dirpath) / d
            if d.startswith(".") or (top and d in skip_top):
                dirnames.remove(d)
            elif p.is_symlink():
                out[(rel_dir / d).as_posix()] = {"link": os.readlink(p)}
                dirnames.remove(d)
        for name in filenames:
            p = Path(dirpath) / name
            if name.startswith(".") or (top and name in skip_top):
                continue
            rel = (rel_dir / name).as_posix()
            if p.is_symlink():
                out[rel] = {"link": os.readlink(p)}
            else:
                out[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return dict(sorted(out.items()))


def verify(root: str | os.PathLike, files: dict[str, Any]) -> str | None:
    """The first recorded file that is missing or changed under ``root`` (as a sentence), or None."""
    root = Path(root)
    for rel, want in files.items():
        p = root / rel
        if "link" in want:
            if p.is_symlink():
                if os.readlink(p) != want["link"]:
                    return f"{p} now links to {os.readlink(p)}, not {want['link']}"
                continue
            target = p.parent / want["link"]
            if p.is_dir() and target.is_dir() and record(p, set()) == record(target, set()):
                continue  # a copy that followed the link: the same files, as good as the link
            return f"{p} is missing (it was a link to {want['link']})"
        if not p.is_file():
            return f"{p} is missing"
        size = p.stat().st_size
        if size != want["size"]:
            return f"{p} has {size} bytes, {want['size']} were written"
        if sha256_file(p) != want["sha256"]:
            return f"{p} changed since it was written (sha256 differs)"
    return None


def safetensors_problem(ckpt: Path) -> str | None:
    """None when ``ckpt`` has a config.json and every ``*.safetensors`` in it parses."""
    from safetensors import SafetensorError, safe_open

    if not (ckpt / "config.json").is_file():
        return f"{ckpt}/config.json is missing"
    weights = sorted(ckpt.glob("*.safetensors"))
    if not weights and not any(ckpt.glob("*.bin")):
        return f"{ckpt} has no weight files"
    for w in weights:
        try:
            with safe_open(str(w), "pt") as f:
                f.keys()
        except (SafetensorError, OSError) as e:
            return f"{w} does not load ({e})"
    return None


def check_loadable(stage_dir: Path, checkpoint: str | None, outputs: dict[str, Any]) -> str | None:
    """Structural check for a done stage without a ``files`` record (see the module docstring)."""
    run_dir = stage_dir.parent.absolute()
    if checkpoint:
        ck = Path(checkpoint)
        inside = ck.absolute().is_relative_to(run_dir)
        if inside and not ck.exists():
            return f"{ck} is missing"
        if ck.is_dir() and (problem := safetensors_problem(ck)):
            return problem
    for value in outputs.values():
        if isinstance(value, str) and os.path.isabs(value) and Path(value).is_relative_to(run_dir):
            if not Path(value).exists():
                return f"{value} is missing"
    return None


def _readable_state(ckpt: Path) -> bool:
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
        return True
    except (OSError, ValueError):
        return False


def remove_partial(root: str | os.PathLike) -> list[str]:
    """Delete the leftovers of killed writes directly under ``root`` and in ``root/trainer``."""
    root, removed = Path(root), []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        if TEMP.match(p.name):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            removed.append(str(p))
    trainer = root / "trainer"
    if trainer.is_dir():
        for p in trainer.glob("checkpoint-*"):
            if p.is_dir() and not _readable_state(p):
                shutil.rmtree(p)
                removed.append(str(p))
    if removed:
        log.info("removed what a killed run left behind: %s", ", ".join(removed))
    return removed
