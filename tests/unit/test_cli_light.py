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


PLAN_PROBE = """
import json, sys
from posttrain.config.compose import compose
from posttrain.pipeline.plan import INIT, build_plan
from posttrain.pipeline.runner import plan_fingerprints
plan = build_plan(compose(sys.argv[1:]))
fps = plan_fingerprints(plan, "init", "data")
print(json.dumps({"stages": [p.name for p in plan], "fps": len(fps),
                  "heavy": sorted(m for m in ("torch", "transformers", "trl", "peft") if m in sys.modules)}))
"""


@pytest.mark.parametrize("pipeline", ["nano2_smoke", "nano2_smollm"])
def test_planning_a_pipeline_imports_no_training_library(tmp_path, pipeline):
    """Validating every stage and fingerprinting the plan (what `run` does before its first stage, and
    all a Slurm submission needs) reads sources, not modules: no torch, transformers, TRL or PEFT."""
    out = subprocess.run(
        [sys.executable, "-c", PLAN_PROBE, f"pipeline={pipeline}", f"run_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["heavy"] == [] and "eval" in got["stages"] and got["fps"] == len(got["stages"]) + 1


EXIT_PROBE = """
import json, sys
from posttrain.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code
print(json.dumps({"rc": rc, "heavy": sorted(m for m in ("torch", "transformers") if m in sys.modules)}))
"""


def test_a_bad_stage_value_fails_before_any_library_loads(tmp_path):
    """A bad sweep budget in `posttrain run` is a one-line error, and torch was never imported."""
    argv = ["run", "pipeline=nano2_smoke", f"run_dir={tmp_path}", "stage.eval.sweep_budgets=[-1]"]
    out = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE, *argv], capture_output=True, text=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"rc": 2, "heavy": []}
    assert "sweep_budgets" in out.stderr.strip().splitlines()[-1]
