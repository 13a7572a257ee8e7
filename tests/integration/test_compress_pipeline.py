"""``nano2_compress``'s smoke variant through ``posttrain run``: teacher SFT -> prune -> distill and the
ce_control on the same pruned model -> eval of all four. Every loss the claims compare is recorded on
the same held-out tokens, the claims evaluate to a verdict, and the eval holds the paired deltas."""

from __future__ import annotations

import json

import pytest

from posttrain.cli import main
from posttrain.tracking.report import run_claims

pytestmark = pytest.mark.integration

SMOKE = [
    "pipeline=nano2_compress",
    "data.total=80",
    "stage.sft.max_steps=6",
    "stage.sft.save_steps=6",
    "stage.sft.eval_steps=0",
    "stage.prune.calibration_samples=8",
    "stage.prune.calibration_max_length=64",
    "stage.prune.eval_max_length=64",
    "stage.distill.max_steps=3",
    "stage.distill.max_length=64",
    "stage.ce_control.max_steps=3",
    "stage.ce_control.max_length=64",
    "stage.eval.max_per_category=2",
    "stage.eval.max_new_tokens=16",
    "stage.eval.budget_tokens=4",
]


def _metrics(run_dir, stage):
    m = json.loads(next(run_dir.glob(f"*_{stage}/manifest.json")).read_text())
    assert m["status"] == "done", m.get("error")
    return m["metrics"]


def test_teacher_prune_distill_and_ce_control_on_the_same_held_out_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    main(["run", f"run_dir={run_dir}", *SMOKE])
    prune, dist, ce, ev = (_metrics(run_dir, s) for s in ("prune", "distill", "ce_control", "eval"))
    assert prune["params_after"] < prune["params_before"] and len(prune["removed_layers"]) == 1
    # the pruned model is both students' start, and all four losses are scored on the same tokens
    assert dist["initial_eval_loss"] == pytest.approx(ce["initial_eval_loss"], rel=1e-6)
    assert dist["initial_eval_kl"] == pytest.approx(ce["initial_eval_kl"], rel=1e-6)
    assert dist["eval_tokens"] == ce["eval_tokens"] == prune["eval_tokens"] > 0
    assert dist["final_eval_loss"] != ce["final_eval_loss"]  # different losses trained them
    assert dist["global_step"] == ce["global_step"] == 3
    verdicts = run_claims(run_dir)
    assert len(verdicts) == 3 and all(v["passed"] in (True, False) for v in verdicts)  # measured, not None
    assert {
        "delta_vs_ce_control.accuracy_all",
        "delta_vs_prune.accuracy_ci_all",
        "prune.delta_vs_sft.accuracy_all",
    } <= set(ev)
