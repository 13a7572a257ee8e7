"""Private Slurm clusters (slurm/cluster.sh) for the ``slurm`` tier.

``slurm_cluster`` (session) is a single-node cluster; ``slurm_cluster_2nodes`` (module) is a separate
2-node one (two slurmd on this host, ``POSTTRAIN_SLURM_NODES=2``) with its own state dir and ports.
Both are started lazily (so the unit tests in this folder never pay for them) into a pytest tmp dir,
on free ports, and stopped when their scope ends; each points ``SLURM_CONF`` at itself meanwhile.
Without the Slurm/munge binaries the slurm tests skip with the reason; set
``POSTTRAIN_INSTALL_SLURM=1`` to run ``slurm/install.sh`` first.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "slurm" / "cluster.sh"
INSTALL_SH = REPO / "slurm" / "install.sh"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel", "sinfo", "srun")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}
TERMINAL |= {"DEADLINE", "PREEMPTED", "UNKNOWN"}

_ACTIVE: dict[str, Path] = {}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slurm: needs a real single-node Slurm cluster (started by the suite when the packages exist)",
    )


@dataclass
class SlurmCluster:
    state_dir: Path
    conf: Path

    def log_tail(self, lines: int = 40) -> str:
        out = []
        log_dir = self.state_dir / "log"
        for p in [log_dir / "slurmctld.log", *sorted(log_dir.glob("slurmd*.log"))]:
            if p.exists():
                tail = p.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"----- {p} (last {len(tail)} lines) -----\n" + "\n".join(tail))
        return "\n".join(out)


def _which(b: str) -> bool:
    return shutil.which(b) is not None or os.access(f"/usr/sbin/{b}", os.X_OK)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_ports(n: int) -> int:
    """First of ``n`` consecutive free ports (the slurmd of node i listens on base + i - 1)."""
    for _ in range(50):
        base = _free_port()
        try:
            for port in range(base + 1, base + n):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {n} consecutive free ports found")


def _require_slurm() -> None:
    """Skip with the reason unless the Slurm/munge binaries exist (optionally installing them) and we are root."""
    if os.environ.get("POSTTRAIN_INSTALL_SLURM") == "1" and not all(_which(b) for b in BINARIES):
        res = subprocess.run([str(INSTALL_SH)], capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            pytest.skip(f"slurm/install.sh failed (exit {res.returncode}): {res.stderr.strip()[-800:]}")
    missing = [b for b in BINARIES if not _which(b)]
    if missing:
        pytest.skip(
            f"Slurm/munge binaries missing ({', '.join(missing)}); run slurm/install.sh "
            "or set POSTTRAIN_INSTALL_SLURM=1"
        )
    if os.geteuid() != 0:
        pytest.skip("the private test cluster runs slurmd, which needs root")


@contextmanager
def _cluster(fixture: str, state_dir: Path, nodes: int = 1) -> Iterator[SlurmCluster]:
    """Start slurm/cluster.sh with ``nodes`` slurmd in ``state_dir`` on free ports; stop it on exit."""
    env = dict(
        os.environ,
        POSTTRAIN_SLURM_NODES=str(nodes),
        POSTTRAIN_SLURMCTLD_PORT=str(_free_port()),
        POSTTRAIN_SLURMD_PORT=str(_free_ports(nodes)),
        POSTTRAIN_SLURM_CRED_EXPIRE="5",  # requeued jobs may restart ~5 s after requeue
    )
    t0 = time.monotonic()
    res = subprocess.run(
        [str(CLUSTER_SH), "start", str(state_dir)], env=env, capture_output=True, text=True, timeout=180
    )
    cluster = SlurmCluster(state_dir, state_dir / "etc" / "slurm.conf")
    if res.returncode != 0 or "export SLURM_CONF=" not in res.stdout:
        subprocess.run([str(CLUSTER_SH), "stop", str(state_dir)], env=env, capture_output=True, timeout=120)
        pytest.fail(
            f"slurm/cluster.sh start failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}\n"
            f"{cluster.log_tail()}",
            pytrace=False,
        )
    print(f"\n[slurm] {nodes}-node test cluster up in {time.monotonic() - t0:.1f}s at {state_dir}")
    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    _ACTIVE[fixture] = state_dir
    try:
        yield cluster
    finally:
        _ACTIVE.pop(fixture, None)
        subprocess.run([str(CLUSTER_SH), "stop", str(state_dir)], env=env, capture_output=True, timeout=120)
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    _require_slurm()
    with _cluster("slurm_cluster", tmp_path_factory.mktemp("slurm-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def slurm_cluster_2nodes(tmp_path_factory):
    """Nodes node1 and node2, both slurmd on this host (each with all of its CPUs)."""
    _require_slurm()
    with _cluster("slurm_cluster_2nodes", tmp_path_factory.mktemp("slurm-2nodes"), nodes=2) as cluster:
        yield cluster


@pytest.fixture
def wait_for_states(slurm_cluster):
    """wait_for_states(ids, done=lambda states: ..., timeout=60) -> last states (fails on timeout)."""
    from posttrain.launch.slurm import job_states

    def _wait(job_ids, done=None, timeout: float = 60.0, poll: float = 0.25):
        done = done or (lambda st: all(s in TERMINAL for s in st.values()))
        deadline = time.monotonic() + timeout
        states = job_states(job_ids)
        while not done(states):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out after {timeout}s waiting for jobs, last states {states}\n"
                    f"{slurm_cluster.log_tail()}",
                    pytrace=False,
                )
            time.sleep(poll)
            states = job_states(job_ids)
        return states

    return _wait


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for fixture, state_dir in list(_ACTIVE.items()):
        if fixture in getattr(item, "fixturenames", ()):
            rep.sections.append(
                (f"slurm daemon logs ({fixture})", SlurmCluster(state_dir, state_dir).log_tail())
            )
