"""Guard prelude of the opt-in unsafe fallback (``_unsafe.py``), run inside the child before untrusted code.

This file's source is sent verbatim to the child followed by ``_posttrain_guard()``; it is never called in
the trainer process. It monkey-patches the child's own interpreter so that, at the Python level:

* process creation is refused: ``os.fork/forkpty/system/popen/exec*/spawn*/posix_spawn*``, ``os.kill/killpg``,
  ``_posixsubprocess.fork_exec`` and ``subprocess.Popen._execute_child``; ``multiprocessing`` and ``ctypes``
  cannot be imported;
* new sockets are refused (``socket.socket``/``_socket.socket`` unless wrapping an existing ``fileno``,
  ``socket.create_connection``, ``socket.create_server``, ``socket.fromfd``);
* writes, creations, deletions, renames and permission changes outside the working directory are refused
  (``open``/``io.open``/``io.FileIO``/``os.open`` in write modes, ``os.remove/unlink/rmdir/mkdir/...``).

Everything here can be undone by determined code (e.g. re-initialising the ``posix`` builtin module), so it is
one layer of defense-in-depth, not a security boundary; the OS sandbox (``sandbox.py``) does not use it.
"""

from __future__ import annotations


def _posttrain_guard() -> None:
    import _posixsubprocess
    import _socket
    import builtins
    import io
    import os
    import posix
    import socket
    import subprocess
    import sys

    root = os.path.realpath(os.getcwd())

    def deny(name: str):
        def denied(*args, **kwargs):
            raise PermissionError(f"sandbox: {name} is disabled")

        denied.__name__ = name
        return denied

    for mod in ("multiprocessing", "ctypes", "_ctypes", "_multiprocessing"):
        sys.modules[mod] = None  # type: ignore[assignment]  # makes `import mod` raise ImportError
    procs = "fork forkpty system popen posix_spawn posix_spawnp kill killpg"
    procs += " execl execle execlp execlpe execv execve execvp execvpe"
    procs += " spawnl spawnle spawnlp spawnlpe spawnv spawnve spawnvp spawnvpe"
    for name in procs.split():
        for mod in (os, posix):
            if hasattr(mod, name):
                setattr(mod, name, deny(f"os.{name}"))
    _posixsubprocess.fork_exec = deny("subprocess")
    subprocess.Popen._execute_child = deny("subprocess")  # type: ignore[method-assign]

    real_socket = _socket.socket

    class NoSocket(real_socket):  # socket.socket.__init__ calls _socket.socket.__init__, so this covers both
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):  # noqa: A002
            if fileno is None:
                raise PermissionError("sandbox: network is disabled")
            real_socket.__init__(self, family, type, proto, fileno)

    _socket.socket = _socket.SocketType = socket.SocketType = NoSocket  # type: ignore[misc]
    for name in ("create_connection", "create_server", "fromfd"):
        setattr(socket, name, deny(f"socket.{name}"))

    def inside(path, dir_fd=None) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        path = os.fsdecode(os.fspath(path))
        base = root if dir_fd is None else os.readlink(f"/proc/self/fd/{dir_fd}")
        full = os.path.realpath(os.path.join(base, path))
        return full == root or full.startswith(root + os.sep)

    def check(path, dir_fd=None) -> None:
        if not inside(path, dir_fd):
            raise PermissionError(f"sandbox: writing outside the working directory is disabled: {path!r}")

    real_open, real_os_open, real_fileio = io.open, os.open, io.FileIO
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in str(mode) for c in "wax+"):
            check(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & write_flags:
            check(path, dir_fd)
        return real_os_open(path, flags, mode, dir_fd=dir_fd)

    class GuardedFileIO(real_fileio):
        def __init__(self, file, mode="r", *args, **kwargs):
            if any(c in str(mode) for c in "wax+"):
                check(file)
            super().__init__(file, mode, *args, **kwargs)

    builtins.open = io.open = guarded_open
    io.FileIO = GuardedFileIO  # type: ignore[misc]
    os.open = posix.open = guarded_os_open

    def guard_paths(name: str, npaths: int) -> None:
        real = getattr(os, name, None)
        if real is None:
            return

        def guarded(*args, **kwargs):
            fd = kwargs.get("dir_fd")
            fds = (kwargs.get("src_dir_fd", fd), kwargs.get("dst_dir_fd", fd))
            for i, path in enumerate(args[:npaths]):
                check(path, fds[i])
            return real(*args, **kwargs)

        guarded.__name__ = name
        setattr(os, name, guarded)
        if hasattr(posix, name):
            setattr(posix, name, guarded)

    for name in "remove unlink rmdir mkdir mkfifo mknod chmod chown lchown truncate utime".split():
        guard_paths(name, 1)
    for name in ("rename", "replace", "link", "symlink"):
        guard_paths(name, 2)
