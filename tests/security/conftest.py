"""Host-side bait for the attack suite: canaries, secrets, listeners and a victim process, plus the checks.

Everything an attack might reach is set up here by the trusted test process (the sandbox's parent), and
``Host.assert_contained`` checks after each attack that none of it was touched, read out or connected to.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from posttrain.rewards import sandbox

NOBODY = 65534


def _sandbox_processes() -> dict[int, int]:
    """pid -> start time of processes a sandbox may have left: uid 65534, its bootstrap, ``sleep 30``."""
    out = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            uid = (p / "status").read_text().split("Uid:")[1].split()[0]
            cmd = (p / "cmdline").read_bytes()
            if uid == str(NOBODY) or b"def _m():" in cmd or cmd == b"sleep\x0030\x00":
                out[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            pass
    return out


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def _victim(fake_key: str) -> subprocess.Popen:
    """A host process holding the fake API key in its environment, for attacks to read or kill."""
    return subprocess.Popen(["sleep", "600"], env={**os.environ, "POSTTRAIN_FAKE_API_KEY": fake_key})


@dataclass
class Host:
    root: Path
    canary: Path
    secret_file: Path
    secrets: list[str]
    tcp: socket.socket
    udp: socket.socket
    unix: socket.socket
    unix_path: str
    abstract: socket.socket
    abstract_name: str
    victim: subprocess.Popen
    fake_key: str
    canary_state: tuple = field(default=())
    before: dict[int, int] = field(default_factory=dict)

    @property
    def subs(self) -> dict[str, str]:
        return {
            "canary": str(self.canary),
            "secret_file": str(self.secret_file),
            "port": str(self.tcp.getsockname()[1]),
            "udp_port": str(self.udp.getsockname()[1]),
            "unix_path": self.unix_path,
            "abstract": self.abstract_name,
            "victim": str(self.victim.pid),
            "parent": str(os.getpid()),
            "pwned": str(self.root / "pwned"),
            "mnt": str(self.root / "mnt"),
            "repo_file": str(Path(__file__).resolve()),
        }

    def snapshot(self) -> None:
        if self.victim.poll() is not None or "T" in _state(self.victim.pid):  # an earlier attack got it
            self.victim.kill()
            self.victim.wait()
            self.victim = _victim(self.fake_key)
        self.canary.write_text("canary\n")  # fresh each attack, in case an earlier one got to it
        self.canary.chmod(0o666)
        st = self.canary.stat()
        self.canary_state = (self.canary.read_bytes(), st.st_mode, st.st_mtime_ns, st.st_uid)
        self.before = _sandbox_processes()

    def assert_contained(self, *outputs: str | bytes) -> None:
        st = self.canary.stat()
        state = (self.canary.read_bytes(), st.st_mode, st.st_mtime_ns, st.st_uid)
        assert state == self.canary_state, "canary file was modified"
        pwned = Path(self.subs["pwned"])
        created = pwned.exists()
        pwned.unlink(missing_ok=True)
        assert not created, "a file was created outside the sandbox"
        shm = list(Path("/dev/shm").glob("posttrain-pwned-*"))
        for f in shm:
            f.unlink()
        assert not shm, "the host's /dev/shm was written"
        mounted = self.subs["mnt"] in Path("/proc/self/mountinfo").read_text()
        if mounted:
            subprocess.run(["umount", "-l", self.subs["mnt"]], check=False)
        assert not mounted, "a mount reached the host"
        text = "\n".join(o.decode(errors="replace") if isinstance(o, bytes) else o for o in outputs)
        for s in self.secrets:
            assert s not in text, "a secret leaked into the sandbox's output"
        for srv in (self.tcp, self.unix, self.abstract):
            with pytest.raises(BlockingIOError):
                srv.accept()
        with pytest.raises(BlockingIOError):
            self.udp.recv(64)
        assert self.victim.poll() is None, "the victim process was killed"
        state = _state(self.victim.pid)
        assert state == "S", f"the victim process was stopped or traced (state {state})"
        deadline = time.monotonic() + 3
        while True:
            new = {p: t for p, t in _sandbox_processes().items() if self.before.get(p) != t}
            if not new or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for pid in new:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        assert not new, f"sandbox processes survived: {sorted(new)}"


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory):
    if sandbox.boundary() is None:
        why = f"no OS sandbox on this machine: {sandbox.boundary_problem()}"
        if os.environ.get("CI") == "true":  # CI runs as root with apt: `make install` must have set it up
            pytest.fail(why)
        pytest.skip(why)
    root = tmp_path_factory.mktemp("host")
    root.chmod(0o777)  # reachable by uid 65534 if it could see the host at all
    (root / "mnt").mkdir()
    canary = root / "canary.txt"
    canary.write_text("canary\n")
    canary.chmod(0o666)
    secret = f"file-secret-{secrets.token_hex(8)}"
    secret_file = root / "secret.txt"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o644)
    fake_key = f"sk-posttrain-canary-{secrets.token_hex(12)}"
    os.environ["POSTTRAIN_FAKE_API_KEY"] = fake_key
    shadow = Path("/etc/shadow").read_text().splitlines()[0] if os.access("/etc/shadow", os.R_OK) else None
    repo_marker = "Host-side bait for the attack suite"  # from this file's docstring
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix_path = str(root / "host.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    os.chmod(unix_path, 0o777)
    abstract_name = f"posttrain-canary-{secrets.token_hex(6)}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    for s in (tcp, unix, abstract):
        s.listen(8)
    for s in (tcp, udp, unix, abstract):
        s.setblocking(False)
    victim = _victim(fake_key)
    h = Host(
        root,
        canary,
        secret_file,
        [secret, fake_key, repo_marker] + ([shadow] if shadow else []),
        tcp,
        udp,
        unix,
        unix_path,
        abstract,
        abstract_name,
        victim,
        fake_key,
    )
    try:
        yield h
    finally:
        h.victim.kill()
        h.victim.wait()
        for s in (tcp, udp, unix, abstract):
            s.close()
        os.environ.pop("POSTTRAIN_FAKE_API_KEY", None)
