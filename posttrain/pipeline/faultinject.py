"""Deterministic SIGKILLs at named points of a real ``posttrain run`` (for tests and bench/faults.py).

``python -m posttrain.pipeline.faultinject run <posttrain run args>`` wraps the CLI. Before the CLI
is imported it wraps the functions below so that each call is an *event*; with
``POSTTRAIN_FAULT=<event>:<n>:<when>`` the process SIGKILLs its whole process group (as a user's
``kill -9 -<pgid>`` would) at the ``n``-th call of ``event`` (1-based):

- ``before``: before the call; ``after``: right after it returns;
- ``mid`` (file writers only): the call writes the first half of its bytes, then the kill.

With ``POSTTRAIN_FAULT_TRACE=<file>`` every event is appended to ``file`` as a JSON line
``{event, n, t, dir}`` (``dir``: the last ``NN_stage``/``data`` dir an event touched), so a
reference run lists every point there is to kill. Nothing here is imported by ``posttrain run``.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

EVENTS = {
    "write_json": "posttrain.pipeline.manifest.write_json_atomic (manifests, configs, records)",
    "save_checkpoint": "posttrain.models.save_checkpoint (init and final stage checkpoints)",
    "safetensors": "safetensors.torch.save_file (every model weight file)",
    "torch_save": "torch.save (trainer optimizer, scheduler, RNG state)",
    "trainer_save": "Trainer._save_checkpoint (a whole trainer checkpoint-N)",
    "train_step": "Trainer.training_step (one micro-batch)",
    "generate": "GenerationMixin.generate (mining, GRPO rollouts, eval)",
    "data_write": "data_recipes.build.write_output (the data build's files)",
    "data_publish": "data_recipes.build._publish (renaming the built data into place)",
    "save_to_disk": "datasets.Dataset(Dict).save_to_disk (data views, mined pairs)",
}
WRITERS = {"write_json", "safetensors", "torch_save"}
_DIR = re.compile(r"(\d{2}_[a-z]+|data)(?=[/.]|$)")
_count: Counter = Counter()
_last_dir = {"dir": ""}
_T0 = time.time()


def parse(spec: str) -> tuple[str, int, str]:
    event, n, when = spec.split(":")
    if event not in EVENTS or when not in ("before", "after", "mid") or int(n) < 1:
        raise ValueError(
            f"POSTTRAIN_FAULT={spec!r}: want <event>:<n>:<before|after|mid>, event in {list(EVENTS)}"
        )
    if when == "mid" and event not in WRITERS:
        raise ValueError(f"POSTTRAIN_FAULT={spec!r}: 'mid' only for {sorted(WRITERS)}")
    return event, int(n), when


def kill_group() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.killpg(os.getpgid(0), signal.SIGKILL)


def _note(event: str, path: Any = None) -> tuple[int, str | None]:
    """Count one ``event``; returns its index and the fault's ``when`` if this call is the target."""
    _count[event] += 1
    n = _count[event]
    if path is not None:
        found = _DIR.findall(Path(str(path)).as_posix())
        if found:
            _last_dir["dir"] = found[-1]
    trace = os.environ.get("POSTTRAIN_FAULT_TRACE")
    if trace:
        rec = {"event": event, "n": n, "t": round(time.time() - _T0, 3), "dir": _last_dir["dir"]}
        with open(trace, "a") as f:
            f.write(json.dumps(rec) + "\n")
    spec = os.environ.get("POSTTRAIN_FAULT")
    if spec:
        target, k, when = parse(spec)
        if target == event and k == n:
            return n, when
    return n, None


def _wrap(owner: Any, name: str, event: str, path_arg: int | None = None, half=None) -> None:
    """Replace ``owner.name`` by a wrapper that notes ``event`` (``half(args, kwargs)`` does ``mid``)."""
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        path = args[path_arg] if path_arg is not None and len(args) > path_arg else kwargs.get("path")
        _, when = _note(event, path)
        if when == "before":
            kill_group()
        if when == "mid":
            half(args, kwargs)
            kill_group()
        out = real(*args, **kwargs)
        if when == "after":
            kill_group()
        return out

    wrapper.__wrapped__ = real
    setattr(owner, name, wrapper)


def _write_half(path: str | os.PathLike, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())


def install() -> None:
    """Wrap every event's function (call before the CLI and the pipeline modules are imported)."""
    import safetensors.torch
    import torch

    def st_half(args, kwargs):
        _write_half(args[1], safetensors.torch.save(args[0], metadata=kwargs.get("metadata")))

    def torch_half(args, kwargs):
        if isinstance(args[1], (str, os.PathLike)):
            buf = io.BytesIO()
            torch.save.__wrapped__(args[0], buf)
            _write_half(args[1], buf.getvalue())

    # first, so that modules binding them by name (transformers' modeling_utils) get the wrappers
    _wrap(safetensors.torch, "save_file", "safetensors", 1, st_half)
    _wrap(torch, "save", "torch_save", 1, torch_half)

    import datasets
    import transformers
    from transformers.generation.utils import GenerationMixin

    import data_recipes.build as build
    import posttrain.models as models
    import posttrain.models.factory as factory
    import posttrain.pipeline.manifest as manifest

    def json_half(args, kwargs):
        path = Path(args[0])
        text = json.dumps(args[1], indent=2, sort_keys=True, default=str).encode()
        _write_half(path.parent / f".{path.name}-killed", text)

    import transformers.modeling_utils as mu

    mu.safe_save_file = safetensors.torch.save_file
    _wrap(manifest, "write_json_atomic", "write_json", 0, json_half)
    _wrap(factory, "save_checkpoint", "save_checkpoint", 2)
    models.save_checkpoint = factory.save_checkpoint  # base.py imports it from posttrain.models
    _wrap(transformers.Trainer, "_save_checkpoint", "trainer_save")
    _wrap(transformers.Trainer, "training_step", "train_step")
    _wrap(GenerationMixin, "generate", "generate")
    _wrap(build, "write_output", "data_write", 0)
    _wrap(build, "_publish", "data_publish", 1)
    _wrap(datasets.Dataset, "save_to_disk", "save_to_disk", 1)
    _wrap(datasets.DatasetDict, "save_to_disk", "save_to_disk", 1)


def main(argv: list[str]) -> int:
    install()
    from posttrain.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def launch(
    args: list[str],
    *,
    fault: str | None = None,
    trace: Path | None = None,
    kill_after_s: float | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout_s: float = 1800,
) -> dict[str, Any]:
    """Run ``posttrain run <args>`` in its own process group: through this wrapper with ``fault`` or
    ``trace``, else the plain CLI (SIGKILLed as a group after ``kill_after_s``). Returns rc, wall_s,
    killed (whether it died of SIGKILL)."""
    import subprocess

    module = "posttrain.pipeline.faultinject" if fault or trace else "posttrain.cli"
    env = {**(env or os.environ)}
    env.pop("POSTTRAIN_FAULT", None)
    env.pop("POSTTRAIN_FAULT_TRACE", None)
    if trace:
        env["POSTTRAIN_FAULT_TRACE"] = str(trace)
    if fault:
        parse(fault)
        env["POSTTRAIN_FAULT"] = fault
    out = open(log, "ab") if log else subprocess.DEVNULL
    t0 = time.time()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "run", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=kill_after_s if kill_after_s is not None else timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
    finally:
        if log:
            out.close()
    return {"rc": rc, "wall_s": round(time.time() - t0, 2), "killed": rc == -signal.SIGKILL}
