"""A seccomp filter for the code sandbox, compiled to classic BPF by libseccomp (see ``sandbox.py``).

libseccomp (Debian's ``libseccomp2``, present wherever apt is) does the hard parts: the architecture
check (other ABIs such as i386 ``int 0x80`` are killed), x32 syscall numbers, and per-kernel syscall
numbering. This module is only a ctypes binding of its five stable C calls (the Python bindings are not
packaged for a venv's interpreter); the compiled program is handed to ``bwrap --seccomp FD``, which
installs it just before it executes the sandboxed interpreter.

The filter allows everything except the calls below, which fail with ``EPERM`` (``ENOSYS`` for
``clone3``, so glibc falls back to ``clone``, whose flags a filter can read):

* namespaces and mounts: ``setns``, ``unshare``, ``clone`` with any ``CLONE_NEW*`` flag, ``mount`` and the
  new mount API, ``pivot_root``, ``chroot``;
* other processes: ``fork``, ``vfork``, ``clone`` without ``CLONE_THREAD`` (threads still work),
  ``ptrace``, ``process_vm_readv/writev``, ``pidfd_*``, ``kcmp``;
* kernel surface: ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*``, ``keyctl``/``add_key``/
  ``request_key``, modules, ``kexec``, ``open_by_handle_at``, ``mknod``, ``memfd_create``/``memfd_secret``.

What it does not do: restrict reads, writes or sockets (the namespaces and mounts do that), or stop
``execve`` (bwrap needs it to start the interpreter; no_new_privs makes setuid binaries inert).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import tempfile

_ALLOW = 0x7FFF0000
_MASKED_EQ = 7  # enum scmp_compare: SCMP_CMP_MASKED_EQ
_CLONE_THREAD = 0x00010000
_CLONE_NEW = {  # CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
    0x00000080,
}
DENIED = (
    "setns unshare mount umount2 pivot_root chroot fsopen fsconfig fsmount fspick move_mount open_tree "
    "mount_setattr fork vfork ptrace process_vm_readv process_vm_writev pidfd_open pidfd_send_signal "
    "pidfd_getfd kcmp bpf perf_event_open userfaultfd io_uring_setup io_uring_enter io_uring_register "
    "keyctl add_key request_key init_module finit_module delete_module kexec_load kexec_file_load "
    "open_by_handle_at name_to_handle_at mknod mknodat memfd_create memfd_secret acct swapon swapoff "
    "reboot quotactl syslog sethostname setdomainname iopl ioperm"
).split()


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)  # SCMP_ACT_ERRNO


def _load():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


@functools.lru_cache(maxsize=1)
def bpf_program() -> bytes:
    """The compiled filter (``struct sock_filter[]``, native byte order); raises OSError without libseccomp."""
    lib = _load()
    ctx = lib.seccomp_init(_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:

        def add(action: int, name: str, *cmps: tuple[int, int, int]) -> None:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                return  # not a syscall on this architecture (e.g. iopl elsewhere)
            arr = (_ArgCmp * max(1, len(cmps)))(*[_ArgCmp(a, _MASKED_EQ, m, v) for a, m, v in cmps])
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
            if rc < 0:
                raise OSError(-rc, f"seccomp_rule_add({name}): {os.strerror(-rc)}")

        for name in DENIED:
            add(_errno(errno.EPERM), name)
        add(_errno(errno.ENOSYS), "clone3")
        add(_errno(errno.EPERM), "clone", (0, _CLONE_THREAD, 0))  # a new process, not a thread
        for flag in _CLONE_NEW:
            add(_errno(errno.EPERM), "clone", (0, flag, flag))
        with tempfile.TemporaryFile() as f:
            rc = lib.seccomp_export_bpf(ctx, f.fileno())
            if rc < 0:
                raise OSError(-rc, f"seccomp_export_bpf: {os.strerror(-rc)}")
            f.seek(0)
            return f.read()
    finally:
        lib.seccomp_release(ctx)
