"""Run untrusted Python (model-written code) inside an OS-level sandbox: bubblewrap under an unprivileged uid.

Each run is one process tree, started as (``_command``)::

    setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs \\
      bwrap --unshare-all --unshare-user --disable-userns --new-session --die-with-parent --as-pid-1 \\
            --seccomp FD ... -- python -I -S -B -c BOOTSTRAP   (the program arrives on stdin, then closed)

What the boundary guarantees, for code that makes arbitrary syscalls (ctypes, a fresh ``posix``, ...):

* **Identity.** Privileges are dropped *before* bwrap (as root, bwrap's ``--uid`` would map back to real
  root): uid/gid 65534 with no groups, no capabilities in any set, ``no_new_privs`` (setuid binaries inert).
  A non-root caller keeps its uid; bwrap's user namespace drops its capabilities.
* **Filesystem.** The root is an empty tmpfs remounted read-only, holding only ``/usr`` (and the
  interpreter's prefix when it lives elsewhere) bound read-only. Nothing of the host's ``/etc``, ``/home``,
  ``/root``, ``/work``, ``/run`` or ``/tmp`` exists inside, so neither datasets (with their answers), secrets
  nor unix sockets can be reached. Writable: private size-limited tmpfs mounts ``/sandbox`` (cwd and
  ``HOME``), ``/tmp`` and ``/dev/shm``, gone when the run ends; nothing is written on the host's disk
  except the captured output (bounded by ``RLIMIT_FSIZE``).
* **Processes.** New pid namespace whose pid 1 is the program: host processes (the trainer's
  ``/proc/<pid>/environ`` and ``mem``) and concurrent runs are invisible, and its ``/proc/1/environ`` is its
  own cleared environment. ``fork``, ``vfork`` and non-thread ``clone`` are refused by seccomp. When the
  program exits or is killed on timeout (``_stop``), the kernel kills everything left in the namespace,
  ``setsid`` children included, and bwrap reaps it: no survivor, no zombie.
* **Network.** New network namespace with only loopback: the host's loopback and abstract unix sockets are
  unreachable.
* **Syscalls.** A seccomp filter (``_seccomp.py``) refuses namespaces, mounts, ptrace, pidfds, bpf, keyrings,
  memfd and the like; nested user namespaces are also disabled by bwrap.
* **Resources.** Hard ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``,
  ``RLIMIT_CORE=0`` and ``RLIMIT_NPROC`` (threads, counted per sandbox), set by the bootstrap before the
  program runs (no ``preexec_fn``, so the threaded trainer spawns with ``vfork``); tmpfs sizes; a
  wall-clock timeout.

Not guaranteed: safety against kernel bugs; reading world-readable files under ``/usr`` and ``/proc``
(kernel and CPU facts); CPU, memory and output up to the limits; timing side channels. There is no
cgroup: total memory is ``RLIMIT_AS`` plus the tmpfs sizes. Forgery of rewards is ``code.py``'s concern
(the checks run in the parent). The interpreter inside is the trainer's base Python when uid 65534 can
reach it, else the system ``/usr/bin/python3`` (a pyenv Python under ``/root`` cannot be bound in:
bwrap resolves even ``--ro-bind-fd`` sources by path, as the dropped uid).

When the boundary is unavailable (no bwrap or setpriv, or user namespaces are refused), ``run_python``
raises ``SandboxUnavailable``, unless ``POSTTRAIN_UNSAFE_CODE_REWARD=1`` opts in to the old Python-level
layers (``_unsafe.py``), which are *not* a security boundary.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from posttrain import PosttrainError
from posttrain.rewards import _unsafe
from posttrain.rewards._seccomp import bpf_program
from posttrain.rewards._unsafe import SandboxResult

UNSAFE_ENV = "POSTTRAIN_UNSAFE_CODE_REWARD"
NOBODY = 65534
WORKDIR = "/sandbox"
TMPFS_MB = 32  # each of /sandbox and /tmp; /dev/shm gets a quarter
MAX_THREADS = 32
_PATH = "/usr/local/bin:/usr/bin:/bin"
# Trusted: runs before the program and sets hard limits it cannot raise (no capabilities anywhere).
_BOOTSTRAP = (
    "def _m():\n"
    "    import json, resource as r, sys\n"
    "    d = json.loads(sys.stdin.buffer.read())\n"
    "    sys.stdin.close()\n"
    "    for name, n in d['limits'].items():\n"
    "        r.setrlimit(getattr(r, name), (n, n))\n"
    "    g = {'__name__': '__main__', '__builtins__': __builtins__}\n"
    "    exec(compile(d['code'], '<sandbox>', 'exec'), g)\n"
    "_m()\n"
)


# Run once per process: the boundary is only used if the sandboxed program really is unprivileged.
_SELF_CHECK = (
    "import os\n"
    "s = open('/proc/self/status').read()\n"
    "ok = os.getuid() != 0 and 'NoNewPrivs:\\t1' in s and 'CapEff:\\t0000000000000000' in s\n"
    "ok = ok and 'CapBnd:\\t0000000000000000' in s and not os.path.exists('/etc/shadow')\n"
    "print('ok' if ok else 'privileged')\n"
)


class SandboxUnavailable(PosttrainError):
    """The OS boundary cannot be set up here and the user did not opt in to running without it."""


@dataclass(frozen=True)
class Boundary:
    bwrap: str
    setpriv: str
    python: str  # the interpreter run inside (world-reachable)
    binds: tuple[str, ...]  # host directories bound read-only at the same path
    seccomp: bytes | None = field(default=None, repr=False)  # compiled filter; None without libseccomp


def _world_reachable(path: str) -> bool:
    """Whether uid 65534 can reach ``path``: every ancestor searchable by others, the file readable."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(2, len(parts)):
        try:
            if not os.stat(os.sep.join(parts[:i])).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    try:
        return os.stat(path).st_mode & (stat.S_IROTH | stat.S_IXOTH) == (stat.S_IROTH | stat.S_IXOTH)
    except OSError:
        return False


def _pick_python() -> tuple[str, tuple[str, ...]]:
    """The trainer's base interpreter if 65534 can reach it, else the system ``python3`` under ``/usr``."""
    base = os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable)
    if _world_reachable(base) and _world_reachable(sys.base_prefix):
        prefix = os.path.realpath(sys.base_prefix)
        return base, () if prefix == "/usr" or prefix.startswith("/usr/") else (prefix,)
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(cand)
        if real.startswith("/usr/") and _world_reachable(real):
            return real, ()
    raise OSError(f"no interpreter that uid {NOBODY} can run ({base} is not reachable; install python3)")


def _command(b: Boundary, *, seccomp_fd: int | None, channel_fd: int | None) -> list[str]:
    drop = [b.setpriv, "--no-new-privs"]
    if os.geteuid() == 0:  # an unprivileged caller keeps its uid; bwrap's user namespace drops its caps
        drop += [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        drop += ["--inh-caps=-all", "--bounding-set=-all"]
    cmd = [b.bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--new-session"]
    cmd += ["--die-with-parent", "--as-pid-1", "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        link = f"/{top}"
        if os.path.islink(link) and os.readlink(link).lstrip("/").startswith("usr/"):
            cmd += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            cmd += ["--ro-bind", link, link]
    for d in b.binds:
        cmd += ["--ro-bind", d, d]
    size = str(TMPFS_MB << 20)
    cmd += ["--dev", "/dev", "--size", str(TMPFS_MB << 18), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    cmd += ["--proc", "/proc", "--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", WORKDIR]
    cmd += ["--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
    env = {"PATH": _PATH, "HOME": WORKDIR, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
    if channel_fd is not None:
        env["POSTTRAIN_CHANNEL_FD"] = str(channel_fd)
    for k, v in env.items():
        cmd += ["--setenv", k, v]
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(seccomp_fd)]
    return [*drop, *cmd, "--", b.python, "-I", "-S", "-B", "-c", _BOOTSTRAP]


def _limits(memory_mb: int, timeout_s: float, file_size_mb: int) -> dict[str, int]:
    return {
        "RLIMIT_AS": memory_mb << 20,
        "RLIMIT_CPU": max(1, int(timeout_s + 1.999)),
        "RLIMIT_FSIZE": file_size_mb << 20,
        "RLIMIT_NOFILE": 64,
        "RLIMIT_CORE": 0,
        "RLIMIT_NPROC": MAX_THREADS,  # counted per sandbox (its own user namespace)
    }


@functools.lru_cache(maxsize=1)
def _probe() -> Boundary | str:
    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    if bwrap is None or setpriv is None:
        return "bwrap or setpriv not found (Debian: apt-get install bubblewrap util-linux)"
    try:
        python, binds = _pick_python()
    except OSError as e:
        return str(e)
    try:
        seccomp = bpf_program()
    except (OSError, AttributeError):
        seccomp = None
    b = Boundary(bwrap, setpriv, python, binds, seccomp)
    res = _run(b, _SELF_CHECK, timeout_s=20.0, memory_mb=512, file_size_mb=1, max_output_bytes=4096)
    if res.stdout.strip() == "privileged":
        return "the sandbox still has privileges (uid 0, capabilities, or no no_new_privs)"
    if res.stdout.strip() != "ok":
        why = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        return f"bwrap could not start a sandbox here: {why}"
    return b


def boundary() -> Boundary | None:
    """The working OS boundary, probed once per process; None when unavailable (see ``boundary_problem``)."""
    b = _probe()
    return b if isinstance(b, Boundary) else None


def boundary_problem() -> str | None:
    """Why the boundary is unavailable, or None when it works."""
    b = _probe()
    return None if isinstance(b, Boundary) else b


def netns_available() -> bool:
    """Whether programs get an empty network namespace (always with the boundary; else ``unshare --net``)."""
    return boundary() is not None or _unsafe.netns_available()


def _stop(proc: subprocess.Popen) -> None:
    """Kill the sandbox so that nothing is left, not even a zombie.

    The program is pid 1 of its namespace (``--as-pid-1``): killing it kills everything inside, and bwrap,
    its parent, reaps it and exits. Killing bwrap first would orphan it to the host's init as a zombie.
    """
    if proc.poll() is None:
        try:
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            kids = []
        for kid in kids:
            try:
                os.kill(int(kid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # bwrap itself, if it is still there
    except (ProcessLookupError, PermissionError):
        pass


def _tail(f, limit: int) -> bytes:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - limit))
    return f.read()


def _file(data: bytes = b"") -> tempfile._TemporaryFileWrapper:
    f = tempfile.TemporaryFile()
    f.write(data)
    f.seek(0)
    return f


def _wait(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Whether ``proc`` exited within ``timeout_s``; a pidfd wakes at once (``Popen.wait`` polls in sleeps)."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout_s * 1000))))
    finally:
        os.close(fd)


def _run(
    b: Boundary,
    code: str,
    *,
    timeout_s: float,
    memory_mb: int,
    file_size_mb: int,
    max_output_bytes: int,
    channel: bool = False,
) -> SandboxResult:
    payload = json.dumps({"code": code, "limits": _limits(memory_mb, timeout_s, file_size_mb)}).encode()
    with contextlib.ExitStack() as stack:
        stdin, out, err, chan = (stack.enter_context(_file(d)) for d in (payload, b"", b"", b""))
        filt = stack.enter_context(_file(b.seccomp)) if b.seccomp is not None else None
        fds = [f.fileno() for f in (chan if channel else None, filt) if f is not None]
        cmd = _command(b, seccomp_fd=filt and filt.fileno(), channel_fd=chan.fileno() if channel else None)
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=stdin,
                stdout=out,
                stderr=err,
                env={"PATH": _PATH},
                cwd="/",
                start_new_session=True,
                pass_fds=fds,
            )
        except (OSError, subprocess.SubprocessError) as e:
            return SandboxResult(False, None, "", f"sandbox: could not start: {e}", False)
        with proc:
            timed_out = not _wait(proc, timeout_s)
            _stop(proc)
            proc.wait()
        rc = proc.returncode
        if rc is not None and 128 < rc <= 128 + 64:
            rc = 128 - rc  # bwrap reports a signal N that killed the program as exit status 128 + N
        stdout = _tail(out, max_output_bytes).decode("utf-8", errors="replace")
        stderr = _tail(err, max_output_bytes).decode("utf-8", errors="replace")
        chan.seek(0)  # the child shares this file's offset
        data = chan.read(max(max_output_bytes, 1 << 16)) if channel else b""
    return SandboxResult(rc == 0 and not timed_out, rc, stdout, stderr, timed_out, data)


def run_python(
    code: str,
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    file_size_mb: int = 16,
    max_output_bytes: int = 1 << 20,
    isolate_network: bool | None = None,
    channel: bool = False,
) -> SandboxResult:
    """Run ``code`` in the sandbox; never raises for misbehaving code (returns ``ok=False``).

    ``stdout``/``stderr`` keep the last ``max_output_bytes`` bytes. ``channel=True`` passes a file as fd
    ``int(os.environ["POSTTRAIN_CHANNEL_FD"])`` and returns its first bytes as ``channel``: the program can
    write anything there, so callers treat it as untrusted data. ``isolate_network`` only matters for the
    unsafe fallback (the boundary always isolates). Raises ``SandboxUnavailable`` without the boundary
    unless ``POSTTRAIN_UNSAFE_CODE_REWARD=1``.
    """
    b = boundary()
    if b is not None:
        return _run(
            b,
            code,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            file_size_mb=file_size_mb,
            max_output_bytes=max_output_bytes,
            channel=channel,
        )
    if os.environ.get(UNSAFE_ENV) != "1":
        raise SandboxUnavailable(
            f"the code reward needs its OS sandbox, which is unavailable here ({boundary_problem()}); "
            f"run `make install` as root to get bubblewrap, or set {UNSAFE_ENV}=1 to run model code "
            "with Python-level guards only (not a security boundary)"
        )
    return _unsafe.run_python(
        code,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        file_size_mb=file_size_mb,
        max_output_bytes=max_output_bytes,
        isolate_network=isolate_network,
        channel=channel,
    )
