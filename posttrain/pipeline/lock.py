"""One ``posttrain run`` per run dir: an exclusive ``flock`` on ``<run_dir>/.posttrain.lock``.

The holder writes ``{pid, host, since}`` into the file (never its command line: it may hold secrets). A second run refuses at once with one
line naming the holder (a Slurm job waits up to ``SLURM_WAIT_S`` first: the submitting process may
still hold the lock for a moment while its first job starts). The kernel drops an ``flock`` when
its holder dies, so the file a killed run leaves behind never blocks; the file itself is never
removed (deleting it would let two processes lock different inodes). The lock is held as long as
the ``RunLock`` object lives; a second ``acquire`` of the same dir in the same process returns the
object already held.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import weakref
from pathlib import Path

from posttrain import PosttrainError

LOCK_NAME = ".posttrain.lock"
SLURM_WAIT_S = 120.0
_held: weakref.WeakValueDictionary[str, RunLock] = weakref.WeakValueDictionary()


class RunLocked(PosttrainError):
    """Another live process holds the run dir's lock."""


class RunLock:
    """An exclusive lock on a run dir, released when closed or garbage-collected."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    def __del__(self):
        self.close()


def holder(path: Path) -> dict:
    """What the lock file says about its (last) holder; empty when unreadable."""
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(info: dict) -> str:
    if not info:
        return "another process (the lock file names no holder yet)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    who = f"pid {info.get('pid')} on {info.get('host')} since {since}"
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        if not _alive(info["pid"]):
            who += " (that pid has exited; a child process of it still holds the lock)"
    return who


def acquire(run_dir: str | os.PathLike, wait_s: float | None = None) -> RunLock:
    """Lock ``run_dir`` or raise ``RunLocked`` naming the holder (after ``wait_s`` seconds)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = (run_dir / LOCK_NAME).resolve()
    if (held := _held.get(str(path))) is not None and held._fd is not None:
        return held
    if wait_s is None:
        wait_s = SLURM_WAIT_S if os.environ.get("SLURM_JOB_ID") else 0.0
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise RunLocked(
                    f"run dir {run_dir} is in use by {_describe(holder(path))}; wait for that run to "
                    f"finish or stop it (lock: {path})"
                ) from None
            time.sleep(0.5)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    lock = RunLock(path, fd)
    _held[str(path)] = lock
    return lock
