"""One reader of a run dir (``posttrain.pipeline.rundir``): stage order, unreadable manifests and torn
metrics lines are handled the same way by status, report, claims and bench."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posttrain.pipeline.manifest import Manifest, ManifestError, save_manifest, write_json_atomic
from posttrain.pipeline.rundir import RunDir, read_metrics
from posttrain.pipeline.status import status_rows
from posttrain.tracking.report import render_report


def make_run(tmp_path, stages=("01_sft", "02_dpo")):
    write_json_atomic(tmp_path / "pipeline.json", {"stages": list(stages)})
    for d in ("00_init", *stages):
        kind = d.split("_", 1)[1]
        (tmp_path / d).mkdir()
        save_manifest(tmp_path / d, Manifest(stage=kind, kind=kind, status="done", fingerprint=d))
    return tmp_path


records = st.lists(st.dictionaries(st.sampled_from(["step", "loss"]), st.integers(0, 9)), max_size=6)


@given(records, st.integers(1, 20))
def test_a_torn_last_line_is_skipped_and_counted(tmp_path_factory, recs, cut):
    path = tmp_path_factory.mktemp("m") / "metrics.jsonl"
    body = "".join(json.dumps(r) + "\n" for r in recs)
    torn = json.dumps({"step": 99, "loss": 1.5})
    path.write_text(body + torn[: min(cut, len(torn) - 1)])
    got, skipped = read_metrics(path)
    assert got == recs and skipped == 1


def test_a_corrupt_middle_line_names_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2\n{"step": 3}\n')
    with pytest.raises(ManifestError, match=rf"{path}:2: not a JSON record"):
        read_metrics(path)


def test_order_is_init_then_pipeline_then_extras(tmp_path):
    run = make_run(tmp_path)
    (run / "07_extra").mkdir()
    save_manifest(run / "07_extra", Manifest(stage="extra", kind="eval", status="done"))
    (run / "03_grpo").mkdir()  # no manifest and not in pipeline.json: not a stage
    assert RunDir(run).order() == ["00_init", "01_sft", "02_dpo", "07_extra"]


def test_unreadable_manifest_is_a_row_everywhere(tmp_path):
    run = make_run(tmp_path)
    (run / "02_dpo" / "manifest.json").write_text("{not json")
    entries = RunDir(run).stages()
    assert [e.status for e in entries] == ["done", "done", "unreadable"]
    assert "02_dpo" in entries[2].error
    rows = status_rows(run)
    assert [r["status"] for r in rows] == ["done", "done", "unreadable"]
    report = render_report(run)["report"].read_text()
    assert "| 02_dpo |  | unreadable |" in report
    assert [m.stage for m in RunDir(run).done()] == ["init", "sft"]
