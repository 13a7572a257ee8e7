"""``posttrain report``: a synthetic run directory renders a markdown report (stage table in pipeline
order, eval tables, image links) and one PNG of curves per stage that logged metrics; an empty or
missing directory fails with one clear line."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from posttrain import PosttrainError
from posttrain.tracking.report import curves, render_report, report_main


def manifest(d: Path, stage: str, kind: str, metrics: dict, status: str = "done") -> None:
    d.mkdir(parents=True, exist_ok=True)
    m = dict(
        stage=stage,
        kind=kind,
        status=status,
        metrics=metrics,
        fingerprint="f" * 64,
        started_at=100.0,
        finished_at=112.5,
        wandb_run_id="abc12345" if kind == "sft" else None,
    )
    (d / "manifest.json").write_text(json.dumps(m))


def jsonl(path: Path, records: list[dict], tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


@pytest.fixture
def run_dir(tmp_path) -> Path:
    run = tmp_path / "demo"
    run.mkdir()
    (run / "pipeline.json").write_text(json.dumps({"stages": ["01_sft", "02_grpo", "03_eval"]}))
    manifest(run / "00_init", "init", "init", {"params": 1_662_120})
    manifest(run / "01_sft", "sft", "sft", {"train_loss": 2.5, "train_runtime": 9.0, "global_step": 4})
    sft = [{"step": s, "time": 0, "loss": 4.0 - s, "learning_rate": 1e-3 / s} for s in (1, 2, 3)]
    sft += [{"step": 2, "time": 1, "loss": 1.5}, {"step": 4, "time": 2, "loss": 0.5, "eval_loss": 0.9}]
    sft += [{"step": 4, "time": 3, "train_loss": 2.5, "train_runtime": 9.0}]
    jsonl(run / "01_sft" / "metrics.jsonl", sft, tail='{"step": 5, "lo')  # killed mid-write
    manifest(run / "02_grpo", "grpo", "grpo", {"reward": 0.75}, status="running")
    grpo = [
        {"step": s, "time": 0, "reward": s / 4, "reward_std": 0.2, "rewards/correct/mean": s / 8}
        for s in (1, 2)
    ]
    jsonl(run / "02_grpo" / "metrics.jsonl", grpo)
    manifest(run / "03_eval", "eval", "eval", {"accuracy_on": 0.5})
    results = {"model": {"accuracy_on": 0.5, "math/on/accuracy": 0.25}, "init": {"accuracy_on": 0.125}}
    (run / "03_eval" / "eval.json").write_text(json.dumps(results))
    manifest(run / "07_extra", "extra", "merge", {})  # a stage dir pipeline.json does not list
    return run


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_curves_dedupe_resumed_steps_and_pick_panels():
    records = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_loss": 1.9}]
    records += [{"step": 2, "train_loss": 2.0, "reward_std": 0.1, "reward": 0.5, "rewards/f/std": 0.0}]
    panels = curves(records)
    assert panels["loss"] == {"eval_loss": ([2], [1.9]), "loss": ([1, 2], [3.0, 1.5])}
    assert panels["reward"] == {"reward": ([2], [0.5])} and "learning rate" not in panels
    assert curves([{"step": 1, "time": 5.0, "loss": float("nan")}]) == {}


def test_render_report(run_dir, capsys):
    out = render_report(run_dir)
    assert set(out) == {"report", "01_sft", "02_grpo"}
    for stage in ("01_sft", "02_grpo"):
        assert out[stage] == run_dir / "report" / f"{stage}_curves.png"
        width, height = png_size(out[stage])
        assert width > 400 and height > 200
    assert png_size(out["01_sft"])[0] == 2 * png_size(out["02_grpo"])[0]  # loss + lr panels vs reward only
    md = out["report"].read_text()
    rows = [line for line in md.splitlines() if line.startswith("| 0")]
    assert [r.split(" | ")[0][2:] for r in rows] == ["00_init", "01_sft", "02_grpo", "03_eval", "07_extra"]
    assert "| 01_sft | sft | done | 12.5 | 4 | train_loss=2.5 | ffffffffff | abc12345 |" in md
    assert "| 02_grpo | grpo | running |" in md and "runtime" not in rows[1]
    assert "| accuracy_on | 0.5 | 0.125 |" in md and "| math/on/accuracy | 0.25 |  |" in md
    assert "![01_sft curves](01_sft_curves.png)" in md and "02_grpo_curves.png" in md
    assert "03_eval_curves" not in md and not (run_dir / "report" / "00_init_curves.png").exists()
    assert report_main([str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report" / "report.md")


def test_report_without_pipeline_json_uses_stage_folders(run_dir):
    (run_dir / "pipeline.json").unlink()
    md = render_report(run_dir)["report"].read_text()
    assert md.index("| 00_init") < md.index("| 01_sft") < md.index("| 07_extra")


def test_empty_or_missing_dir_fails_clearly(tmp_path):
    with pytest.raises(PosttrainError, match="has no stage manifests") as e:
        render_report(tmp_path)
    assert "\n" not in str(e.value) and not (tmp_path / "report").exists()
    with pytest.raises(PosttrainError, match="is not a directory"):
        report_main([str(tmp_path / "nope")])
