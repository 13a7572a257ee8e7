"""``posttrain nas`` end to end on the tiny NemotronH: both phases run as one pipeline, the tables
are written, phase 2 only distils candidates the memory planner admits, and a rerun resumes (every
stage skipped, same tables)."""

from __future__ import annotations

import json

import pytest

from posttrain.cli import main
from posttrain.pipeline.manifest import load_manifest

pytestmark = pytest.mark.integration

TINY = [
    "data.total=60",
    "stage.sft.max_steps=4",
    "stage.sft.save_steps=4",
    "stage.sft.eval_steps=0",
    "stage.prune.calibration_samples=8",
    "stage.prune.calibration_max_length=64",
    "stage.prune.eval_max_length=64",
    "stage.prune.eval_max_rows=8",
    "stage.distill.max_length=64",
    "stage.distill.per_device_train_batch_size=4",
]


def test_two_phase_search_writes_tables_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # a relative out dir, as users type it (checkpoint paths must not double it)
    out = tmp_path / "nas"
    # teacher 8 layers, hidden 128, FFN 256: 4 width candidates, a budget that admits some
    args = [
        "out=nas",
        "depths=[6,7]",
        "hidden_sizes=[64,112]",
        "intermediate_sizes=[128,192]",
        "context=1024",
        "budget_fraction=0.8",
        "max_candidates=2",
        "distill_steps=2",
        "throughput_batch=2",
        "throughput_tokens=4",
        "--",
        *TINY,
    ]
    assert main(["nas", *args]) == 0
    report = json.loads((out / "nas.json").read_text())
    assert [r["num_layers"] for r in report["phase1"]] == [6, 7]
    assert sum(r["picked"] for r in report["phase1"]) == 1 and report["depth"] in (6, 7)
    picked = next(r for r in report["phase1"] if r["picked"])
    assert picked["final_eval_loss"] == min(r["final_eval_loss"] for r in report["phase1"])
    p2, rejected = report["phase2"], report["rejected"]
    assert len(p2) == 2 and len(p2) + len(rejected) == 4
    assert all(r["total_gib"] <= report["memory"]["budget_gib"] for r in p2)
    assert [r["rank"] for r in p2] == [1, 2] and report["winner"] == p2[0]["name"]
    assert all(r["kept"]["num_layers"] == report["depth"] and r["tokens_per_s"] > 0 for r in p2)
    # the candidates distilled use the most memory among those that fit
    fitting_rejected = [r["total_gib"] for r in rejected if r["fits"]]
    assert all(r["total_gib"] >= g for r in p2 for g in fitting_rejected)
    md = (out / "nas.md").read_text()
    assert "## Phase 1: depth" in md and "## Phase 2: width" in md and p2[0]["name"] in md
    # every stage recorded the loss the ranking used, on the same held-out rows
    for r in p2:
        m = load_manifest(next(out.glob(f"*_distill_{r['name']}")))
        assert m.metrics["final_eval_loss"] == r["final_eval_loss"]
    first = {d.name: load_manifest(d).finished_at for d in out.glob("[0-9]*_*")}
    assert main(["nas", *args]) == 0  # resumes: nothing retrained
    assert {d.name: load_manifest(d).finished_at for d in out.glob("[0-9]*_*")} == first
    again = json.loads((out / "nas.json").read_text())
    assert [r["name"] for r in again["phase1"]] == [r["name"] for r in report["phase1"]]
    assert again["depth"] == report["depth"]
