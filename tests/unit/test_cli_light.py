"""The commands that answer from files never import the training stack (issue 15, start-up)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from posttrain.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "heavy": sorted(m for m in ("torch", "transformers", "datasets") if m in sys.modules)}))
"""


@pytest.mark.parametrize(
    "argv",
    [["status", "{d}"], ["status", "{d}", "json=true"], ["memory", "model=nemotron_nano_12b_v2"], ["--help"]],
)
def test_light_commands_do_not_import_torch(tmp_path, argv):
    args = [a.format(d=tmp_path) for a in argv]
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"rc": 0, "heavy": []}


def test_data_build_help_lists_fields_and_recipes():
    """`data build --help` used to fail with "expected key=value"; now it prints the recipe schema without torch."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "data", "build", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    got = json.loads(lines[-1])
    assert got == {"rc": 0, "heavy": []}
    text = "\n".join(lines[:-1])
    recipes = [r.strip() for r in text.split("recipes:")[1].splitlines()[0].split(",")]
    assert {"nano2", "nano2_tiny"} <= set(recipes)
    assert "seed=0" in text and "Seed for generation" in text


def test_export_usage_and_missing_out():
    """`export nemo_rl --help` prints the usage; a missing out= is a one-line error before any work."""
    help_ = subprocess.run(
        [sys.executable, "-m", "posttrain.cli", "export", "nemo_rl", "--help"], capture_output=True, text=True
    )
    assert help_.returncode == 0 and "posttrain export nemo_rl pipeline=<name> out=<dir>" in help_.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "posttrain.cli", "export", "nemo_rl", "pipeline=nano2_smoke"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "error: export nemo_rl: missing out="
    )
    assert (
        subprocess.run([sys.executable, "-m", "posttrain.cli", "export", "x"], capture_output=True).returncode
        == 2
    )
