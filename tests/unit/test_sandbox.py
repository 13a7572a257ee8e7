"""The code sandbox and code reward under misbehaving programs: each returns 0 reward, fast, without damage."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from posttrain.rewards import code, sandbox
from posttrain.rewards.sandbox import run_python

pytestmark = pytest.mark.skipif(
    sandbox.boundary() is None, reason=f"no OS sandbox here: {sandbox.boundary_problem()}"
)

ADD_TESTS = {"entry_point": "add", "tests": ["assert add(1, 2) == 3", "assert add(-5, 5) == 0"]}
TIMEOUT = 1.5
SLACK = 3.0  # process start-up and teardown on a loaded 2-core box


def fenced(body: str) -> str:
    return f"Here you go:\n```python\n{body}\n```\n"


def timed_score(body: str, meta: dict = ADD_TESTS) -> float:
    start = time.monotonic()
    reward = code.score(fenced(body), meta, timeout_s=TIMEOUT)
    assert time.monotonic() - start < TIMEOUT + SLACK
    return reward


def test_correct_code_gets_full_reward() -> None:
    assert timed_score("def add(a, b):\n    return a + b") == 1.0


def test_partially_correct_code_gets_fraction() -> None:
    assert timed_score("def add(a, b):\n    return a + b if a > 0 else 1") == 0.5


def test_last_python_block_is_used_and_missing_entry_point_fails() -> None:
    two = fenced("def add(a, b):\n    return 0") + fenced("def add(a, b):\n    return a + b")
    assert code.score(two, ADD_TESTS) == 1.0
    assert code.score("def add(a, b):\n    return a + b", ADD_TESTS) == 1.0  # no fence: the whole answer
    assert (
        timed_score("def plus(a, b):\n    return a + b", {**ADD_TESTS, "tests": ["assert 1 + 1 == 2"]}) == 0.0
    )


def test_infinite_loop_times_out() -> None:
    assert timed_score("while True:\n    pass\ndef add(a, b):\n    return a + b") == 0.0


def test_fork_bomb_is_refused() -> None:
    assert timed_score("import os\nwhile True:\n    os.fork()\ndef add(a, b):\n    return a + b") == 0.0
    swallowing = (
        "import os\nfor _ in range(100):\n    try:\n        os.fork()\n    except Exception:\n        pass\n"
    )
    result = run_python(swallowing + "print('survived')", timeout_s=TIMEOUT)
    assert result.ok and result.stdout.strip() == "survived"  # every fork refused, only one process printed


def test_subprocess_is_refused() -> None:
    result = run_python("import subprocess\nsubprocess.run(['true'])", timeout_s=TIMEOUT)
    assert not result.ok and "PermissionError" in result.stderr


def test_huge_allocation_fails_cleanly() -> None:
    assert timed_score("x = bytearray(10**11)\ndef add(a, b):\n    return a + b") == 0.0
    result = run_python("x = bytearray(10**11)", timeout_s=TIMEOUT, memory_mb=256)
    assert not result.ok and "MemoryError" in result.stderr


def test_writes_stay_inside_the_sandbox() -> None:
    target = Path(f"/tmp/pwned_{uuid.uuid4().hex}")
    body = f"open({str(target)!r}, 'w').write('x')\nprint(open({str(target)!r}).read())"
    try:
        result = run_python(body, timeout_s=TIMEOUT)  # the sandbox's /tmp is its own tmpfs
        assert result.ok and result.stdout.strip() == "x", result.stderr
        assert not target.exists()
        for path in ("/pwned", "/usr/pwned", "/dev/pwned"):
            result = run_python(f"open({path!r}, 'w')", timeout_s=TIMEOUT)
            assert not result.ok and "Read-only file system" in result.stderr
    finally:
        target.unlink(missing_ok=True)


def test_writes_inside_workdir_work_and_leave_nothing_on_the_host() -> None:
    prog = "import os, tempfile\nopen('f.txt', 'w').write('hi')\ntempfile.mkstemp()\nprint(os.getcwd())"
    result = run_python(prog, timeout_s=TIMEOUT)
    assert result.ok, result.stderr
    assert result.stdout.strip() == sandbox.WORKDIR and not Path(sandbox.WORKDIR, "f.txt").exists()


def test_tmpfs_and_file_sizes_are_bounded() -> None:
    prog = "open('big', 'wb').write(b'x' * (40 << 20))"  # over RLIMIT_FSIZE (16 MiB)
    assert not run_python(prog, timeout_s=TIMEOUT).ok
    fill = "for i in range(8):\n    open(f'f{i}', 'wb').write(b'x' * (15 << 20))"  # over the 32 MiB tmpfs
    result = run_python(fill, timeout_s=TIMEOUT)
    assert not result.ok and "No space left" in result.stderr


@pytest.fixture
def listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


def _assert_no_connection(srv: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        srv.accept()


@pytest.mark.parametrize("isolate_network", [False, None])
def test_network_is_refused(listener: socket.socket, isolate_network: bool | None) -> None:
    port = listener.getsockname()[1]
    prog = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('connected')"
    result = run_python(
        prog, timeout_s=TIMEOUT, isolate_network=isolate_network
    )  # False: guard prelude alone
    assert not result.ok and "connected" not in result.stdout
    body = f"import socket\nsocket.create_connection(('127.0.0.1', {port}))\ndef add(a, b):\n    return a + b"
    assert timed_score(body) == 0.0
    _assert_no_connection(listener)


def test_raw_socket_cannot_reach_the_host_loopback(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    prog = f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))\nprint('connected')"
    result = run_python(prog, timeout_s=TIMEOUT, isolate_network=True)
    assert not result.ok and "connected" not in result.stdout
    assert "ConnectionRefusedError" in result.stderr  # the sandbox's own loopback, nobody listening
    _assert_no_connection(listener)


def test_forged_records_are_not_trusted() -> None:
    fd = "int(__import__('os').environ['POSTTRAIN_CHANNEL_FD'])"
    forged = (
        "import os\n"
        f"os.write({fd}, b\"('loaded', True)\\n('value', 0, 0, 'True')\\n('done', 0)\\n('done', 1)\\n\")\n"
        "os._exit(0)\n"
    )
    assert timed_score(forged) == 0.0  # 'True' is not 3, and test 1 reported no value
    tests = code.code_checks.compile_tests(ADD_TESTS["tests"], "add")
    good = b"('loaded', True)\n('value', 0, 0, '3')\n('done', 0)\n('value', 1, 0, '1')\n('done', 1)\n"
    assert code.parse_records(good, tests) == [True, False]
    assert code.parse_records(b"('value', 0, 0, '3')\n('done', 0)\n", tests) == [False, False]


def test_env_is_minimal_and_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTTRAIN_FAKE_SECRET", "hunter2")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    result = run_python("import os, sys\nprint(sorted(os.environ), sys.flags.isolated)", timeout_s=TIMEOUT)
    assert result.ok, result.stderr
    assert "hunter2" not in result.stdout and "PROXY" not in result.stdout.upper()
    assert result.stdout.strip().endswith("1")


def test_stdin_is_closed_and_output_is_bounded() -> None:
    assert timed_score("x = input()\ndef add(a, b):\n    return a + b") == 0.0
    result = run_python("while True:\n    print('x' * 10000)", timeout_s=TIMEOUT, max_output_bytes=1000)
    assert not result.ok and len(result.stdout) <= 1000


def test_escaped_children_are_killed_with_the_group() -> None:
    bypass = (
        "import sys, time\ndel sys.modules['posix']\nimport posix\n"
        "try:\n    pid = posix.fork()\nexcept OSError:\n    print('fork-failed'); sys.exit(0)\n"
        "if pid == 0:\n    time.sleep(60)\nelse:\n    print(pid, flush=True)\n"
    )
    result = run_python(bypass, timeout_s=TIMEOUT)
    out = result.stdout.strip()
    if out == "fork-failed":  # RLIMIT_NPROC is enforced (not root): the earlier layer already held
        return
    pid = int(out)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    pytest.fail(f"child {pid} survived the sandbox")
