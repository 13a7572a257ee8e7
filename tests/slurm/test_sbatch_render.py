"""render_sbatch / SlurmJobSpec without a cluster (pure rendering; no slurm marker needed)."""

from __future__ import annotations

import subprocess

import pytest

from posttrain.launch.slurm import SlurmJobSpec, render_sbatch, slurm_available


def _spec(**kw) -> SlurmJobSpec:
    base = dict(
        name="sft", command=["python", "-m", "posttrain.cli", "stage=sft"], workdir="/w", log_dir="/w/logs"
    )
    base.update(kw)
    return SlurmJobSpec(**base)


def _directives(script: str) -> list[str]:
    return [ln for ln in script.splitlines() if ln.startswith("#SBATCH")]


def _bash_ok(script: str, tmp_path) -> None:
    p = tmp_path / "s.sbatch"
    p.write_text(script)
    res = subprocess.run(["bash", "-n", str(p)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_single_process_defaults(tmp_path):
    s = render_sbatch(_spec())
    d = _directives(s)
    assert d == [
        "#SBATCH --job-name=sft",
        "#SBATCH --partition=debug",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=4G",
        "#SBATCH --time=01:00:00",
        "#SBATCH --chdir=/w",
        "#SBATCH --output=/w/logs/sft-%j.out",
        "#SBATCH --error=/w/logs/sft-%j.err",
        "#SBATCH --signal=B:USR1@60",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
    ]
    assert s.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in s
    assert "--dependency" not in s and "--account" not in s and "--gpus-per-node" not in s
    assert "srun" not in s and "torchrun" not in s and "container" not in s.replace("# ", "")
    assert "\npython -m posttrain.cli stage=sft &\n" in s
    assert "trap '_pt_forward USR1' USR1" in s and 'wait "$_pt_child"' in s
    for var in ("MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK"):
        assert f"export {var}" in s
    assert 'scontrol show hostnames "${SLURM_JOB_NODELIST' in s
    assert 'scontrol show node -o "$_pt_first"' in s  # MASTER_ADDR is the first node's NodeAddr
    _bash_ok(s, tmp_path)


def test_multinode_gpus_account_container_extra_env(tmp_path):
    s = render_sbatch(
        _spec(
            nodes=2,
            nproc_per_node=8,
            gpus_per_node=8,
            cpus_per_task=64,
            mem="0",
            time="04:00:00",
            account="llm",
            partition="batch",
            signal_seconds=300,
            container_image="nvcr.io/nvidia/pytorch:25.01-py3",
            container_mounts=["/lustre:/lustre", "/home:/home"],
            extra_sbatch=["--exclusive", "#SBATCH --qos=high"],
            env={"HF_HOME": "/lustre/hf cache", "WANDB_MODE": "offline"},
        )
    )
    d = _directives(s)
    for line in (
        "#SBATCH --account=llm",
        "#SBATCH --partition=batch",
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=64",
        "#SBATCH --signal=B:USR1@300",
        "#SBATCH --exclusive",
        "#SBATCH --qos=high",
    ):
        assert line in d, line
    assert "export HF_HOME='/lustre/hf cache'" in s and "export WANDB_MODE=offline" in s
    assert "srun --nodes=2 --ntasks-per-node=1 --cpus-per-task=64" in s
    assert (
        "--container-image=nvcr.io/nvidia/pytorch:25.01-py3 --container-mounts=/lustre:/lustre,/home:/home"
        in s
    )
    assert "(trap '' USR1 && exec torchrun --nnodes 2 --nproc-per-node 8" in s
    assert '--rdzv-backend c10d --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT"' in s
    assert "--no-python python -m posttrain.cli stage=sft) &" in s
    _bash_ok(s, tmp_path)


def test_container_single_process_and_shell_snippet(tmp_path):
    s = render_sbatch(_spec(command="cd /x && exec python t.py 'a b'", container_image="img.sqsh"))
    assert "srun --ntasks=1 --cpus-per-task=1 --container-image=img.sqsh \\" in s
    assert "bash -c 'cd /x && exec python t.py '\"'\"'a b'\"'\"'' &" in s
    assert "torchrun" not in s
    _bash_ok(s, tmp_path)


@pytest.mark.parametrize(
    "kw",
    [dict(name="bad name"), dict(nodes=0), dict(command=[]), dict(env={"1X": "y"}), dict(log_dir="/a b")],
)
def test_invalid_specs_rejected(kw):
    with pytest.raises(ValueError):
        _spec(**kw)


def test_slurm_available_without_sbatch(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    ok, why = slurm_available()
    assert ok is False and "sbatch" in why
