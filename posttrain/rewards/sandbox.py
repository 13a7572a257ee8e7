"""Run untrusted Python (model-written code) in a throw-away subprocess.

THIS IS DEFENSE-IN-DEPTH, NOT A SECURITY BOUNDARY. There is no seccomp filter, no chroot and no separate user:
code that tries hard (e.g. re-initialising builtin modules, reading arbitrary files, walking interpreter
memory) can get around the Python-level layers. It is meant to stop *accidental* damage and naive reward
hacking by a policy during RL, not a motivated attacker. Run the trainer in a container you can throw away.

Layers, in order:

1. Fresh ``tempfile.mkdtemp`` working directory (also ``HOME`` and ``TMPDIR``), deleted afterwards.
2. ``python -I -B``: isolated mode (ignores ``PYTHON*`` env vars and the user site-dir), no ``.pyc`` writes.
   The program arrives on stdin (never on disk or argv) and stdin is closed before it runs.
3. Minimal environment: ``PATH``, ``HOME``, ``TMPDIR``, ``LANG`` only (no proxies, tokens or credentials).
4. ``resource.setrlimit`` in ``preexec_fn``: ``RLIMIT_AS`` (memory), ``RLIMIT_CPU`` (CPU seconds),
   ``RLIMIT_FSIZE`` (largest file, incl. the captured stdout/stderr), ``RLIMIT_NOFILE``, ``RLIMIT_CORE=0``
   and ``RLIMIT_NPROC=0`` (blocks fork for non-root users; *not enforced for root*, hence layer 5).
5. Guard prelude (``_guard.py``) run in the child before the code: refuses process creation and killing,
   new sockets, and filesystem writes/deletes outside the working directory; blocks ``ctypes`` and
   ``multiprocessing`` imports.
6. Network namespace: when ``unshare --net`` works (root or CAP_SYS_ADMIN), the child gets an empty
   network namespace, so even code that bypasses layer 5 has no network. Probed once per process.
7. ``start_new_session=True`` + ``os.killpg(SIGKILL)`` of the whole process group when the wall-clock
   timeout expires (always enforced) and after every run, so stray children do not survive.

Not protected: reading any file the trainer's user can read (and printing it), CPU/memory use up to the
limits, code that escapes the process group (``setsid`` via a bypass of layer 5), and in-process forgery of
results by code that introspects its caller (see ``code.py``). ``preexec_fn`` is used although the caller
may be multi-threaded; it only calls ``resource.setrlimit`` (no Python-level locks), which is safe in practice.
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
    ok: bool  # exited with status 0 within the time limit
    returncode: int | None  # negative: killed by that signal; None: could not start
    stdout: str
    stderr: str
    timed_out: bool


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


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(f, limit: int) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - limit))
    return f.read().decode("utf-8", errors="replace")


def run_python(
    code: str,
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    file_size_mb: int = 16,
    max_output_bytes: int = 1 << 20,
    isolate_network: bool | None = None,
) -> SandboxResult:
    """Run ``code`` under the layers above; never raises for misbehaving code (returns ``ok=False``).

    ``stdout``/``stderr`` keep the last ``max_output_bytes`` bytes. ``isolate_network=None`` uses a network
    namespace when available; ``False`` relies on the guard prelude alone.
    """
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
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
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
                    close_fds=True,
                )
            except (OSError, subprocess.SubprocessError) as e:
                return SandboxResult(False, None, "", f"sandbox: could not start: {e}", False)
            with proc:
                try:
                    proc.communicate(payload, timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                except (BrokenPipeError, OSError):
                    pass  # the child died before reading its program; returncode says how
                finally:
                    _kill_group(proc.pid)
                    proc.wait()
            rc = proc.returncode
            stdout, stderr = _tail(out, max_output_bytes), _tail(err, max_output_bytes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return SandboxResult(rc == 0 and not timed_out, rc, stdout, stderr, timed_out)
