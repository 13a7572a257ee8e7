"""A built wheel holds every file the code reads at run time, and a non-editable install of it runs a
pipeline from another directory, with a user config directory added through ``--config-dir``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import posttrain

pytestmark = pytest.mark.integration

ROOT = Path(posttrain.__file__).resolve().parents[1]
PKG = ROOT / "posttrain"
DATA_SUFFIXES = (".yaml", ".jinja", ".j2")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # --no-build-isolation: build with this venv's setuptools (no index needed); a copy of the tree so
    # setuptools' build/ and egg-info never land in the checkout.
    src = build / "src"
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"], capture_output=True, text=True
    ).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((ROOT / rel).read_bytes())
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            ".",
        ],
        cwd=src,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = out.glob("posttrain-*.whl")
    return whl


def test_wheel_holds_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [p for p in PKG.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES + (".py",)]
    needed = [p for p in needed if "__pycache__" not in p.parts]
    missing = [str(p.relative_to(ROOT)) for p in needed if str(p.relative_to(ROOT)) not in names]
    assert not missing, f"not in the wheel: {missing}"
    for rel in (
        "posttrain/configs/config.yaml",
        "posttrain/configs/pipeline/nano2_smoke.yaml",
        "posttrain/models/chat_template.jinja",
        "posttrain/launch/templates/stage.sbatch.j2",
        "data_recipes/build.py",
    ):
        assert rel in names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_installed_wheel_runs_a_pipeline_from_elsewhere(wheel, tmp_path):
    target = tmp_path / "site"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    user_conf = tmp_path / "my_configs" / "pipeline"
    user_conf.mkdir(parents=True)
    (user_conf / "my_smoke.yaml").write_text(
        "# @package _global_\ndefaults:\n  - nano2_smoke\n  - _self_\nstage:\n  sft:\n    max_steps: 3\n"
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}
    env.pop("POSTTRAIN_CONFIG_DIR", None)
    where = subprocess.run(
        [sys.executable, "-c", "import posttrain.cli as c; print(c.__file__); print(c.CONFIG_DIR)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.returncode == 0, where.stderr
    mod_file, config_dir = where.stdout.split()
    assert Path(mod_file).is_relative_to(target) and Path(config_dir).is_relative_to(target)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "posttrain.cli",
            "run",
            "--config-dir",
            str(user_conf.parent),
            "pipeline=my_smoke",
            "run_dir=runs/x",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    manifests = [json.loads(p.read_text()) for p in (work / "runs/x").glob("[0-9][0-9]_*/manifest.json")]
    assert {m["stage"] for m in manifests} >= {"sft", "preference", "dpo", "grpo", "eval"}
    assert {m["status"] for m in manifests} == {"done"}
    (sft,) = [m for m in manifests if m["stage"] == "sft"]
    assert sft["metrics"]["global_step"] == 3  # the user's pipeline (4 in nano2_smoke) was the one run
