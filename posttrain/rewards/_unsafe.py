"""The opt-in fallback when the OS sandbox is unavailable (``POSTTRAIN_UNSAFE_CODE_REWARD=1``).

NOT A SECURITY BOUNDARY. It stops accidents and naive reward hacking, not a motivated program: an attacker
audit got out of it 28 ways (fresh ``posix`` modules, ``_io``, ``gc``, fd tricks, ``/proc/<ppid>``, ...).
Layers: a fresh temp working directory; ``python -I -B`` with the program on stdin; a minimal environment;
rlimits (``RLIMIT_NPROC=0`` is not enforced for root); the guard prelude (``_guard.py``); an empty network
namespace when ``unshare --net`` works; ``killpg`` of the process group when the run ends.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

GUARD_SOURCE = Path(__file__).with_name("_guard.py").read_text(encoding="utf-8")
_BOOTSTRAP = (
    "def _m():\n"
    "    import json, sys\n"
    "    d = json.loads(sys.stdin.buffer.read())\n"
    "    sys.stdin.close()\n"
    "    gg = {'__name__': '_posttrain_guard', '__builtins__': __builtins__}\n"
    "    exec(compile(d.pop('guard'), '<guard>', 'exec'), gg)\n"
    "    gg.pop('_posttrain_guard')()\n"
    "    g = {'__name__': '__main__', '__builtins__': __builtins__}\n"
    "    exec(compile(d.pop('code'), '<sandbox>', 'exec'), g)\n"
    "_m()\n"
)


@dataclass(frozen=True)
class SandboxResult:
    """What both runners (``sandbox.run_python`` and this one) return."""

    ok: bool  # exited with status 0 within the time limit
    returncode: int | None  # negative: killed by that signal (bwrap's 128 + N); None: could not start
    stdout: str
    stderr: str
    timed_out: bool
    channel: bytes = b""  # what the program wrote to fd ``$POSTTRAIN_CHANNEL_FD`` (when asked for)


@functools.lru_cache(maxsize=1)
def netns_available() -> bool:
    """Whether ``unshare --net`` works here (needs root or CAP_SYS_ADMIN)."""
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        probe = subprocess.run([exe, "--net", "--", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def _set_limits(memory_bytes: int, cpu_s: int, fsize_bytes: int) -> None:
    """preexec_fn: runs in the forked child before exec; only C-level setrlimit calls."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_bytes, fsize_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def _tail(f, limit: int) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - limit))
    return f.read().decode("utf-8", errors="replace")


def run_python(
    code: str,
    *,
    timeout_s: float,
    memory_mb: int,
    file_size_mb: int,
    max_output_bytes: int,
    isolate_network: bool | None,
    channel: bool,
):
    """Same contract as ``sandbox.run_python``, under the layers above only."""
    workdir = tempfile.mkdtemp(prefix="posttrain_sandbox_")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    cmd = [sys.executable, "-I", "-B", "-c", _BOOTSTRAP]
    if isolate_network is None:
        isolate_network = netns_available()
    if isolate_network:
        cmd = [shutil.which("unshare") or "unshare", "--net", "--", *cmd]
    limits = functools.partial(
        _set_limits, memory_mb << 20, max(1, int(timeout_s + 1.999)), file_size_mb << 20
    )
    payload = json.dumps({"guard": GUARD_SOURCE, "code": code}).encode()
    timed_out = False
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as ch:
            if channel:
                env["POSTTRAIN_CHANNEL_FD"] = str(ch.fileno())
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    cwd=workdir,
                    env=env,
                    preexec_fn=limits,
                    start_new_session=True,
                    pass_fds=[ch.fileno()] if channel else [],
                )
            except (OSError, subprocess.SubprocessError) as e:
                return SandboxResult(False, None, "", f"sandbox: could not start: {e}", False)
            with proc:
                try:
                    proc.communicate(payload, timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                except (BrokenPipeError, OSError):
                    pass
                finally:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                    proc.wait()
            rc = proc.returncode
            stdout, stderr = _tail(out, max_output_bytes), _tail(err, max_output_bytes)
            ch.seek(0)
            data = ch.read(max(max_output_bytes, 1 << 16)) if channel else b""
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return SandboxResult(rc == 0 and not timed_out, rc, stdout, stderr, timed_out, data)
