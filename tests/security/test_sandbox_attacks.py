"""Attack suite for the code sandbox: each program tries one escape, as the candidate of a code reward.

Every attack runs twice: bare under ``run_python`` (its output must hold no secret) and as the answer of a
wrong ``add`` under ``code.score`` (which must be 0). After each, ``Host.assert_contained`` checks that the
canary is untouched, no secret was printed, no listener got a connection, the victim process lives and no
sandbox process survived. The old in-interpreter guard let 28 of these classes out, run as root.
"""

from __future__ import annotations

import time
from string import Template

import pytest

from posttrain.rewards import code, run_python

TIMEOUT = 2.0
SLACK = 4.0
# Preludes that get around an in-interpreter guard: a ctypes import it blocked, a fresh ``posix`` module.
LIBC = (
    "import os, sys\nfor m in ('ctypes', '_ctypes'):\n    sys.modules.pop(m, None)\n"
    "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
)
FRESH_POSIX = (
    "import _imp, importlib.machinery as m, os, time\n"
    "p = _imp.create_builtin(m.ModuleSpec('posix', None, origin='built-in'))\n"
)
WRITE = "os.O_WRONLY | os.O_TRUNC"
STACK = (  # the victim's environment strings sit at the top of its stack
    "lo, hi = [int(x, 16) for x in [l for l in open('/proc/$victim/maps') if '[stack]' in l][0].split()[0].split('-')]\n"
)
WRONG_ADD = "\ndef add(a, b):\n    return 0\n"
META = {"entry_point": "add", "tests": ["assert add(1, 2) == 3", "assert add(123456, 654321) == 777777"]}
ESCAPED = "ESCAPED"  # printed by an attack that believes it got out

ATTACKS = {
    # filesystem: write outside the sandbox
    "fs_io_open": "import _io\n_io.open('$canary', 'w').write('pwned')",
    "fs_fileio": "import _io\n_io.FileIO('$canary', 'w').write(b'pwned')",
    "fs_fresh_posix_write": FRESH_POSIX + f"p.write(p.open('$canary', {WRITE}), b'pwned')",
    "fs_reload_io": "import importlib, io\nimportlib.reload(io)\nio.open('$canary', 'a').write('pwned')",
    "fs_gc_real_open": "import gc\nfor o in gc.get_objects():\n    if callable(o) and getattr(o, '__name__', '') == 'open' and o.__module__ == '_io':\n        o('$canary', 'a').write('pwned')",
    "fs_chdir_relative": "import os\nos.chdir('/')\nopen(os.path.relpath('$canary', '/'), 'w').write('x')",
    "fs_fd_fchmod_utime": "import os\nfd = os.open('$canary', os.O_RDONLY)\nos.fchmod(fd, 0o777)\nos.utime(fd, (0, 0))",
    "fs_symlink_race": FRESH_POSIX + f"p.symlink('$canary', 'l')\np.write(p.open('l', {WRITE}), b'pwned')",
    "fs_unlink_rename": FRESH_POSIX + "try:\n    p.rename('$canary', 'x')\nfinally:\n    p.unlink('$canary')",
    "fs_create_outside": FRESH_POSIX + "p.open('$pwned', os.O_CREAT | os.O_WRONLY)",
    "fs_ctypes_open": LIBC
    + f"fd = libc.open(b'$canary', {WRITE})\nassert fd >= 0, 'open'\nlibc.write(fd, b'x', 1)",
    "fs_mount_over": LIBC + "assert libc.mount(b'none', b'$mnt', b'tmpfs', 0, None) == 0\nprint('ESCAPED')",
    # secrets
    "secret_host_file": "print(open('$secret_file').read())",
    "secret_repo_file": "print(open('$repo_file').read())",
    "secret_etc_shadow": "print(open('/etc/shadow').read())",
    "secret_env": "import os\nprint(dict(os.environ))",
    "secret_proc_environ": "import os\nfor pid in ($victim, $parent, os.getppid(), 1):\n    try:\n        print(open(f'/proc/{pid}/environ').read())\n    except OSError as e:\n        print(e)",
    "secret_walk_proc": "import os\nfor p in os.listdir('/proc'):\n    for f in ('environ', 'cmdline'):\n        try:\n            print(open(f'/proc/{p}/{f}', 'rb').read())\n        except OSError:\n            pass",
    "secret_proc_mem": STACK
    + "f = open('/proc/$victim/mem', 'rb')\nf.seek(hi - 65536)\nprint(f.read(65536))",
    "secret_process_vm_readv": LIBC
    + STACK
    + "buf = ctypes.create_string_buffer(65536)\nl = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 65536)\nr = (ctypes.c_void_p * 2)(hi - 65536, 65536)\nlibc.process_vm_readv($victim, l, 1, r, 1, 0)\nprint(buf.raw)",
    # processes
    "proc_fork_setsid": FRESH_POSIX
    + "if p.fork() == 0:\n    p.setsid()\n    time.sleep(30)\nprint('ESCAPED')",
    "proc_spawn_setsid": FRESH_POSIX
    + "p.posix_spawn('/bin/sleep', ['sleep', '30'], {}, setsid=True)\nprint('ESCAPED')",
    "proc_subprocess_session": "import subprocess\nsubprocess.Popen(['sleep', '30'], start_new_session=True)\nprint('ESCAPED')",
    "proc_raw_clone": LIBC
    + "pid = libc.syscall(56, 17, 0, 0, 0, 0)\nif pid == 0:\n    libc.setsid()\n    libc.sleep(30)\nprint('clone', pid)",
    "proc_kill_victim": FRESH_POSIX
    + "for pid in ($victim,):\n    try:\n        p.kill(pid, 9)\n    except OSError as e:\n        print(e)",
    "proc_pidfd_send_signal": LIBC
    + "fd = libc.syscall(434, $victim, 0)\nprint(libc.syscall(424, fd, 9, None, 0), ctypes.get_errno())",
    "proc_exec_shell": FRESH_POSIX
    + "p.execv('/bin/sh', ['sh', '-c', 'kill -9 $victim; cat $secret_file /etc/shadow; setsid sleep 30 & echo spawned'])",
    "proc_thread_bomb": "import threading, time\nfor _ in range(5000):\n    threading.Thread(target=time.sleep, args=(30,)).start()\nprint('ESCAPED')",
    # network
    "net_tcp_loopback": "import socket\nsocket.create_connection(('127.0.0.1', $port), timeout=1).send(b'pwned')",
    "net_fresh_socket_module": "import sys\ndel sys.modules['_socket']\nimport _socket\ns = _socket.socket()\ns.settimeout(1)\ns.connect(('127.0.0.1', $port))",
    "net_udp": "import sys\ndel sys.modules['_socket']\nimport _socket\ns = _socket.socket(2, 2)\ns.sendto(b'pwned', ('127.0.0.1', $udp_port))\nprint('ESCAPED')",
    "net_unix_path": "import sys\ndel sys.modules['_socket']\nimport _socket\ns = _socket.socket(1, 1)\ns.connect('$unix_path')",
    "net_unix_abstract": "import sys\ndel sys.modules['_socket']\nimport _socket\ns = _socket.socket(1, 1)\ns.connect('\\0$abstract')",
    "net_setns_parent": LIBC
    + "fd = os.open('/proc/$parent/ns/net', os.O_RDONLY)\nassert libc.setns(fd, 0) == 0\ndel sys.modules['_socket']\nimport _socket\n_socket.socket().connect(('127.0.0.1', $port))",
    "net_unshare_user_then_net": LIBC
    + "assert libc.unshare(0x10000000 | 0x40000000) == 0, ctypes.get_errno()\nprint('ESCAPED')",
    # resources
    "res_memfd_past_as": "import os\nfds = [os.memfd_create(f'm{i}') for i in range(48)]\nfor fd in fds:\n    os.write(fd, b'x' * (15 << 20))\nprint('ESCAPED')",
    "res_dev_shm_fill": "for i in range(16):\n    open(f'/dev/shm/posttrain-pwned-{i}', 'wb').write(b'x' * (8 << 20))\nprint('ESCAPED')",
    "res_workdir_fill": "for i in range(64):\n    open(f'f{i}', 'wb').write(b'x' * (15 << 20))\nprint('ESCAPED')",
    "res_memory_bomb": "x = bytearray(10**11)\nprint('ESCAPED')",
    "res_cpu_spin": "while True:\n    pass",
    "res_output_flood": "import os\nwhile True:\n    os.write(1, b'x' * 65536)",
    # ctypes / kernel surface
    "ctypes_ptrace_victim": LIBC + "assert libc.ptrace(16, $victim, None, None) == 0\nprint('ESCAPED')",
    "ctypes_bpf_io_uring": LIBC
    + "params = ctypes.create_string_buffer(120)\nassert libc.syscall(425, 8, params) >= 0 or libc.syscall(321, 0, None, 0) >= 0\nprint('ESCAPED')",
    "ctypes_keyctl": LIBC + "assert libc.syscall(248, b'user', b'k', b'v', 1, -4) >= 0\nprint('ESCAPED')",
}

FORGERIES = {
    "forge_always_equal": "class E:\n    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\ndef add(a, b):\n    return E()",
    "forge_int_subclass": "class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\ndef add(a, b):\n    return I(0)",
    "forge_patch_exec_compile": "import builtins\nbuiltins.exec = builtins.eval = lambda *a, **k: True\nbuiltins.compile = lambda *a, **k: None\ndef add(a, b):\n    return 0",
    "forge_patch_json_repr": "import builtins, json\nreal = json.dumps\njson.dumps = lambda o, *a, **k: real({**o, 'passed': o['total']} if isinstance(o, dict) and 'total' in o else o)\nbuiltins.repr = lambda o: 'True'\ndef add(a, b):\n    return 0",
    "forge_rewrite_tests": "import gc\nfor o in gc.get_objects():\n    if isinstance(o, list) and o and all(isinstance(t, (str, list)) for t in o):\n        if all(str(t).startswith(('assert', '[(')) for t in o):\n            o[:] = ['pass' if isinstance(t, str) else [('exec', 'pass')] for t in o]\ndef add(a, b):\n    return 0",
    "forge_trace_harness": "import sys\nfor m in ('ctypes', '_ctypes'):\n    sys.modules.pop(m, None)\nimport ctypes\ndef t(frame, event, arg):\n    loc = frame.f_locals\n    for name in ('passed', 'loaded'):\n        if name in loc and 'tests' in loc:\n            loc[name] = len(loc['tests']) if name == 'passed' else True\n            ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))\n    return t\nsys.settrace(t)\nf = sys._getframe(1)\nwhile f:\n    f.f_trace = t\n    f = f.f_back\ndef add(a, b):\n    return 0",
    "forge_read_expected": "import gc, json, os, re, sys\nf = sys._getframe()\nwhile f:\n    loc = f.f_locals\n    if 'nonce' in loc and 'tests' in loc:\n        n = len(loc['tests'])\n        os.write(1, ('\\n' + loc['nonce'] + ' ' + json.dumps({'passed': n, 'total': n}) + '\\n').encode())\n        os._exit(0)\n    f = f.f_back\nseen = ' '.join(repr(o) for o in gc.get_objects() if isinstance(o, (str, list, tuple)))\nseen += open('/proc/self/cmdline').read()\nnums = [int(n) for n in re.findall(r'== (\\d+)', seen)]\ndef add(a, b):\n    return nums[-1] if nums else 0",
    "forge_channel_records": "import os\nfd = int(os.environ['POSTTRAIN_CHANNEL_FD'])\nos.write(fd, b\"('loaded', True)\\n('value', 0, 0, 'True')\\n('done', 0)\\n('done', 1)\\n\")\nos._exit(0)",
    "forge_exit_early": "import sys\nsys.exit(0)",
    "forge_shadow_builtins": "def isinstance(*a):\n    return True\ndef len(*a):\n    return 1\ndef add(a, b):\n    return [0]",
}


def _fill(template: str, host) -> str:
    return Template(template).substitute(host.subs)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_contained(name: str, host) -> None:
    program = _fill(ATTACKS[name], host)
    host.snapshot()
    start = time.monotonic()
    result = run_python(program, timeout_s=TIMEOUT, max_output_bytes=1 << 16)
    assert time.monotonic() - start < TIMEOUT + SLACK
    host.assert_contained(result.stdout, result.stderr, result.channel)
    assert ESCAPED not in result.stdout
    start = time.monotonic()
    assert code.score(f"```python\n{program}\n{WRONG_ADD}```", META, timeout_s=TIMEOUT) == 0.0
    assert time.monotonic() - start < TIMEOUT + SLACK
    host.assert_contained()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forgery_scores_zero(name: str, host) -> None:
    program = _fill(FORGERIES[name], host)
    host.snapshot()
    meta = {
        **META,
        "tests": [
            *META["tests"],
            "assert isinstance(add(1, 2), int) and len(str(add(1, 2))) == 1 and add(1, 2) > 2",
        ],
    }
    assert code.score(f"```python\n{program}\n```", meta, timeout_s=TIMEOUT) == 0.0
    host.assert_contained()


def test_correct_solution_still_scores_under_the_same_harness(host) -> None:
    right = "import threading\nt = threading.Thread(target=print)\nt.start()\nt.join()\ndef add(a, b):\n    return a + b"
    assert code.score(f"```python\n{right}\n```", META, timeout_s=TIMEOUT) == 1.0


def test_the_child_never_sees_expected_values() -> None:
    tests = code.code_checks.compile_tests(META["tests"], "add")
    script = code.build_harness("def add(a, b):\n    return 0", tests, "add")
    assert "777777" not in script and "== 3" not in script and "add(123456, 654321)" in script
