"""One code-fingerprint policy (``data_recipes.codehash``): a step's code version covers exactly the
modules it can import, and the files they read next to them."""

from __future__ import annotations

import sys

import pytest

from data_recipes import codehash
from posttrain.pipeline.fingerprint import code_version
from posttrain.stages import stage_module

PKG = "chpkg_fixture"


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    root = tmp_path / PKG
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "entry.py").write_text(
        f"TABLE = {{'x': '{PKG}.named'}}  # imported by name\n\ndef f():\n    from {PKG}.sub import dep\n"
    )
    (root / "named.py").write_text("Y = 2\n")
    (root / "sub" / "dep.py").write_text(
        'from pathlib import Path\nT = Path(__file__).with_name("t.jinja")\n'
    )
    (root / "sub" / "t.jinja").write_text("{{ x }}")
    (root / "other.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    codehash.module_files.cache_clear()
    yield root
    codehash.module_files.cache_clear()
    sys.modules.pop(PKG, None)


def version(root):
    return codehash.code_version((f"{PKG}.entry",), (PKG,))


def test_closure_follows_function_level_imports_and_parents(pkg):
    assert codehash.closure((f"{PKG}.entry",), (PKG,)) == sorted(
        [PKG, f"{PKG}.entry", f"{PKG}.named", f"{PKG}.sub", f"{PKG}.sub.dep"]
    )


@pytest.mark.parametrize(
    ("path", "changes"),
    [
        ("sub/dep.py", True),
        ("sub/t.jinja", True),
        ("sub/__init__.py", True),
        ("named.py", True),
        ("other.py", False),
    ],
)
def test_version_changes_exactly_with_the_code_that_runs(pkg, path, changes):
    before = version(pkg)
    (pkg / path).write_text((pkg / path).read_text() + "\n# edited\n")
    assert (version(pkg) != before) is changes


def test_stage_versions_cover_their_imports():
    pkgs = ("posttrain", "data_recipes")
    sft = codehash.closure((stage_module("sft").__name__,), pkgs)
    grpo = codehash.closure((stage_module("grpo").__name__,), pkgs)
    assert "posttrain.stages.base" in sft and "posttrain.rewards.format" in grpo
    assert "posttrain.rewards.format" not in sft and "posttrain.cli" not in grpo
    assert code_version(stage_module("sft")) != code_version(stage_module("grpo"))
    assert code_version(stage_module("sft")) == code_version("posttrain.stages.sft")
