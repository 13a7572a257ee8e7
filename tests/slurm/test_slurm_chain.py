"""submit_chain / job_states / cancel against the real single-node cluster (see conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from posttrain.launch.slurm import SlurmJobSpec, SlurmSubmitError, job_info, job_states, submit_chain

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _spec(tmp_path: Path, name: str, command, **kw) -> SlurmJobSpec:
    return SlurmJobSpec(
        name=name, command=command, workdir=tmp_path, log_dir=tmp_path / "logs", mem="100M", **kw
    )


def _logs(tmp_path: Path) -> str:
    parts = [f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted((tmp_path / "logs").glob("*"))]
    return "\n".join(parts)


def test_three_stage_chain_runs_in_dependency_order(tmp_path, wait_for_states):
    out = tmp_path / "order.txt"
    tag = _uid()
    stamp = f"import time; open({str(out)!r}, 'a').write('%s %.6f\\n' % ({{name!r}}, time.time()))"
    specs = [
        # argv form, a shell-snippet form and another argv form
        _spec(tmp_path, f"a-{tag}", [sys.executable, "-c", stamp.format(name="a") + "; time.sleep(0.5)"]),
        _spec(tmp_path, f"b-{tag}", f'sleep 0.2; echo "b $(date +%s.%N)" >> {out}'),
        _spec(tmp_path, f"c-{tag}", [sys.executable, "-c", stamp.format(name="c")]),
    ]
    t0 = time.monotonic()
    ids = submit_chain(specs, script_dir=tmp_path / "scripts")
    assert len(ids) == 3 and all(i.isdigit() for i in ids)
    # the dependency is on the sbatch command line, not in the script
    assert "--dependency" not in (tmp_path / "scripts" / f"b-{tag}.sbatch").read_text()
    assert job_info(ids[1])["Dependency"].startswith(f"afterok:{ids[0]}")
    states = wait_for_states(ids, timeout=60)
    elapsed = time.monotonic() - t0
    assert states == dict.fromkeys(ids, "COMPLETED"), f"{states}\n{_logs(tmp_path)}"
    rows = [ln.split() for ln in out.read_text().splitlines()]
    assert [r[0] for r in rows] == ["a", "b", "c"], rows
    times = [float(r[1]) for r in rows]
    assert times == sorted(times)
    assert times[1] - times[0] >= 0.5  # b started only after a (which sleeps 0.5 s) finished
    print(f"3-stage chain completed in {elapsed:.1f}s")


def test_sbatch_rejection_raises_and_submits_nothing_after(tmp_path, wait_for_states):
    tag = _uid()
    specs = [
        _spec(tmp_path, f"first-{tag}", "sleep 60"),
        _spec(tmp_path, f"bad-{tag}", "true", partition="no-such-partition"),
        _spec(tmp_path, f"third-{tag}", "true"),
    ]
    with pytest.raises(SlurmSubmitError) as ei:
        submit_chain(specs, script_dir=tmp_path / "scripts")
    err = ei.value
    assert err.stage == f"bad-{tag}"
    assert f"bad-{tag}" in str(err)
    assert "invalid partition" in str(err).lower(), str(err)  # sbatch's own stderr is in the message
    assert len(err.submitted) == 1
    # the already-submitted first stage was cancelled (cancel_on_error=True) ...
    wait_for_states(err.submitted, done=lambda st: st[err.submitted[0]] == "CANCELLED", timeout=30)
    # ... and the stage after the failing one was never submitted
    res = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%j"], capture_output=True, text=True, check=True
    )
    names = set(res.stdout.split())
    assert f"first-{tag}" in names and f"third-{tag}" not in names and f"bad-{tag}" not in names


def test_failed_stage_cancels_its_dependents(tmp_path, wait_for_states):
    tag = _uid()
    marker = tmp_path / "after-ran"
    specs = [
        _spec(tmp_path, f"ok-{tag}", "true"),
        _spec(tmp_path, f"boom-{tag}", "echo failing on purpose >&2; exit 3"),
        _spec(tmp_path, f"after-{tag}", f"touch {marker}"),
    ]
    t0 = time.monotonic()
    ids = submit_chain(specs, script_dir=tmp_path / "scripts")
    states = wait_for_states(ids, timeout=60)
    elapsed = time.monotonic() - t0
    assert states == {ids[0]: "COMPLETED", ids[1]: "FAILED", ids[2]: "CANCELLED"}, states
    info = job_info(ids[2])
    assert info["Reason"] == "DependencyNeverSatisfied", info
    assert info["ExitCode"] == "0:0"
    assert job_info(ids[1])["ExitCode"] == "3:0"
    assert not marker.exists()
    print(f"failed middle stage -> dependent cancelled after {elapsed:.1f}s")


def test_depends_on_and_unknown_ids(tmp_path, wait_for_states):
    tag = _uid()
    out = tmp_path / "dep.txt"
    first = submit_chain(
        [_spec(tmp_path, f"pre-{tag}", f"sleep 0.5; echo pre >> {out}")], script_dir=tmp_path
    )
    second = submit_chain(
        [_spec(tmp_path, f"post-{tag}", f"echo post >> {out}")], script_dir=tmp_path, depends_on=first[0]
    )
    assert job_info(second[0])["Dependency"].startswith(f"afterok:{first[0]}")
    wait_for_states(first + second, timeout=60)
    assert out.read_text().split() == ["pre", "post"]
    assert job_states(["987654321"]) == {"987654321": "UNKNOWN"}
