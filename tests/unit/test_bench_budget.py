"""bench/budget.py resolves the run dir's final checkpoint from manifests written by the pipeline's own code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from posttrain import PosttrainError
from posttrain.pipeline.manifest import Manifest, save_manifest, write_json_atomic

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["01_sft", "02_preference", "03_dpo", "04_grpo", "05_eval"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_budget", ROOT / "bench" / "budget.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fake_run(tmp: Path, statuses: dict[str, str]) -> Path:
    """A run dir like `posttrain run` leaves: pipeline.json, manifests, checkpoints (eval/preference link back)."""
    write_json_atomic(tmp / "pipeline.json", {"stages": STAGES})
    prev = "00_init"
    for d in ["00_init", *STAGES]:
        status = statuses.get(d, "done")
        kind = d.split("_", 1)[1]
        sd = tmp / d
        sd.mkdir()
        if kind in ("preference", "eval"):
            (sd / "checkpoint").symlink_to(Path("..") / prev / "checkpoint")
        else:
            (sd / "checkpoint").mkdir()
            prev = d
        ckpt = f"runs/demo/{d}/checkpoint"  # as recorded: relative to where the pipeline ran
        save_manifest(
            sd, Manifest(stage=kind, kind=kind, status=status, fingerprint=f"fp-{d}", checkpoint=ckpt)
        )
    return tmp


def test_picks_last_done_training_stage_not_eval(bench, tmp_path):
    got = bench.final_checkpoint(fake_run(tmp_path, {}))
    assert (got["stage"], got["fingerprint"], got["unfinished_later_stages"]) == ("grpo", "fp-04_grpo", [])
    assert got["path"] == str(tmp_path / "04_grpo" / "checkpoint")  # the copy's own dir, not runs/demo/...
    # an old cwd-relative manifest path is read under the run dir it was found in (manifest.py)
    assert got["manifest_checkpoint"] == str(tmp_path / "04_grpo" / "checkpoint")


def test_failed_last_stage_falls_back_to_previous_done_and_says_so(bench, tmp_path):
    got = bench.final_checkpoint(fake_run(tmp_path, {"04_grpo": "failed", "05_eval": "pending"}))
    assert got["stage"] == "dpo"
    assert got["unfinished_later_stages"] == ["04_grpo (failed)"]


def test_no_pipeline_is_an_error(bench, tmp_path):
    with pytest.raises(PosttrainError, match="no pipeline run.*make demo"):
        bench.final_checkpoint(tmp_path)


def test_only_init_done_is_an_error_not_a_random_model(bench, tmp_path):
    run = fake_run(tmp_path, dict.fromkeys(STAGES, "running"))
    with pytest.raises(PosttrainError, match="no finished training stage.*make demo"):
        bench.final_checkpoint(run)
    assert bench.main(["--run-dir", str(run)]) == 2
