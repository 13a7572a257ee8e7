"""Crash-safety pieces on their own: relative manifest paths, one-line errors for broken manifests,
output records that catch truncation, cleanup of killed writes, the run lock and metrics trimming."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from posttrain.pipeline import integrity
from posttrain.pipeline.lock import LOCK_NAME, RunLocked, acquire
from posttrain.pipeline.manifest import Manifest, ManifestError, load_manifest, save_manifest
from posttrain.pipeline.status import status_rows
from posttrain.stages.base import last_checkpoint, trim_metrics


def test_manifest_paths_are_run_relative_so_a_copy_points_at_itself(tmp_path):
    run = tmp_path / "run"
    m = Manifest(stage="sft", kind="sft", status="done", checkpoint=str(run / "01_sft" / "checkpoint"))
    m.inputs = {"checkpoint": str(run / "00_init" / "checkpoint"), "ref": "org/hub-model"}
    m.outputs = {"pairs": str(run / "01_sft" / "pairs"), "ext": "/elsewhere/model"}
    m.metrics = {"resumed_from": str(run / "01_sft" / "trainer" / "checkpoint-2"), "loss": 1.5}
    save_manifest(run / "01_sft", m)
    raw = json.loads((run / "01_sft" / "manifest.json").read_text())
    assert raw["checkpoint"] == "01_sft/checkpoint" and raw["inputs"]["checkpoint"] == "00_init/checkpoint"
    assert raw["inputs"]["ref"] == "org/hub-model" and raw["outputs"]["ext"] == "/elsewhere/model"
    assert raw["metrics"]["resumed_from"] == "01_sft/trainer/checkpoint-2"
    shutil.copytree(run, tmp_path / "copy")
    got = load_manifest(tmp_path / "copy" / "01_sft")
    assert got.checkpoint == str(tmp_path / "copy" / "01_sft" / "checkpoint")
    assert got.inputs == {
        "checkpoint": str(tmp_path / "copy" / "00_init" / "checkpoint"),
        "ref": "org/hub-model",
    }
    assert got.outputs["ext"] == "/elsewhere/model" and got.metrics["loss"] == 1.5


@pytest.mark.parametrize("old_root", ["/orig/runs/a", "runs/a"])
def test_old_absolute_or_cwd_relative_manifest_is_read_under_the_current_run_dir(tmp_path, old_root):
    d = tmp_path / "moved" / "03_dpo"
    d.mkdir(parents=True)
    old = {
        "stage": "dpo",
        "kind": "dpo",
        "status": "done",
        "checkpoint": f"{old_root}/03_dpo/checkpoint",
        "inputs": {"checkpoint": f"{old_root}/02_preference/checkpoint", "ext": "/models/x"},
        "outputs": {"pairs": f"{old_root}/02_preference/pairs"},
    }
    (d / "manifest.json").write_text(json.dumps(old))
    m = load_manifest(d)
    run = tmp_path / "moved"
    assert m.checkpoint == str(run / "03_dpo" / "checkpoint")
    assert m.inputs == {"checkpoint": str(run / "02_preference" / "checkpoint"), "ext": "/models/x"}
    assert m.outputs["pairs"] == str(run / "02_preference" / "pairs")


def test_invalid_manifest_is_one_error_naming_the_file_and_status_still_lists_the_run(tmp_path):
    (tmp_path / "pipeline.json").write_text(json.dumps({"stages": ["01_sft", "02_dpo"]}))
    save_manifest(tmp_path / "00_init", Manifest(stage="init", kind="init", status="done"))
    (tmp_path / "01_sft").mkdir()
    (tmp_path / "01_sft" / "manifest.json").write_text('{"stage": "sft", "status": done}')
    with pytest.raises(ManifestError, match=r"01_sft/manifest\.json: not valid JSON .*line 1 column 28"):
        load_manifest(tmp_path / "01_sft")
    rows = status_rows(tmp_path)
    assert [(r["stage"], r["status"]) for r in rows] == [
        ("init", "done"),
        ("sft", "unreadable"),
        ("dpo", "pending"),
    ]
    assert "01_sft/manifest.json" in rows[1]["error"]
    (tmp_path / "pipeline.json").write_text("{")  # an unreadable stage order falls back to the dirs
    assert [r["stage"] for r in status_rows(tmp_path)] == ["init", "sft"]


def test_record_and_verify_catch_truncation_edits_deletion_and_relinking(tmp_path):
    ck = tmp_path / "01_sft" / "checkpoint"
    ck.mkdir(parents=True)
    save_file({"w": torch.arange(1000.0)}, ck / "model.safetensors")
    (ck / "config.json").write_text("{}")
    (tmp_path / "01_sft" / "trainer").mkdir()  # resume checkpoints are not outputs
    (tmp_path / "01_sft" / "trainer" / "x").write_text("x")
    os.symlink("../01_sft/checkpoint", tmp_path / "01_sft" / "link")
    files = integrity.record(tmp_path / "01_sft")
    assert set(files) == {"checkpoint/model.safetensors", "checkpoint/config.json", "link"}
    assert integrity.verify(tmp_path / "01_sft", files) is None
    w = ck / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    assert "model.safetensors has" in integrity.verify(tmp_path / "01_sft", files)
    assert "does not load" in integrity.safetensors_problem(ck)
    w.write_bytes(data[:-1] + b"\x01")
    assert "sha256 differs" in integrity.verify(tmp_path / "01_sft", files)
    w.unlink()
    assert integrity.verify(tmp_path / "01_sft", files).endswith("model.safetensors is missing")
    w.write_bytes(data)
    os.unlink(tmp_path / "01_sft" / "link")
    os.symlink("/elsewhere", tmp_path / "01_sft" / "link")
    assert "now links to /elsewhere" in integrity.verify(tmp_path / "01_sft", files)
    os.unlink(tmp_path / "01_sft" / "link")  # a copy that followed the link: fine while equal
    shutil.copytree(ck, tmp_path / "01_sft" / "link")
    assert integrity.verify(tmp_path / "01_sft", files) is None
    (tmp_path / "01_sft" / "link" / "config.json").write_text('{"x": 1}')
    assert "was a link to ../01_sft/checkpoint" in integrity.verify(tmp_path / "01_sft", files)


def test_remove_partial_deletes_only_leftovers_of_killed_writes(tmp_path):
    for d in (".checkpoint-ab12", ".checkpoint-old", ".data.tmp-x1", ".data.old-1-2", ".hydra", "checkpoint"):
        (tmp_path / d).mkdir()
    for f in (".manifest.json-k3", ".config.json-zz", ".posttrain.lock", "manifest.json"):
        (tmp_path / f).write_text("{}")
    for step, state in ((2, "{}"), (4, '{"global_st'), (6, None)):
        (tmp_path / "trainer" / f"checkpoint-{step}").mkdir(parents=True)
        if state is not None:
            (tmp_path / "trainer" / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert last_checkpoint(tmp_path / "trainer").endswith("checkpoint-2")  # 4's state was cut short
    integrity.remove_partial(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".hydra",
        ".posttrain.lock",
        "checkpoint",
        "manifest.json",
        "trainer",
    ]
    assert [p.name for p in (tmp_path / "trainer").iterdir()] == ["checkpoint-2"]


def test_trim_metrics_keeps_records_up_to_the_resumed_step_and_drops_a_cut_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text("".join(json.dumps({"step": s, "loss": s}) + "\n" for s in (1, 2, 3, 4)) + '{"step": 5, "lo')
    trim_metrics(p, 2)
    assert [json.loads(line)["step"] for line in p.read_text().splitlines()] == [1, 2]


HOLD = "import sys, time; from posttrain.pipeline.lock import acquire; l = acquire(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_second_holder_is_refused_naming_the_first_and_a_killed_holder_does_not_block(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"held"
        with pytest.raises(RunLocked, match=rf"in use by pid {proc.pid} on .* since") as e:
            acquire(tmp_path)
        assert "\n" not in str(e.value)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == proc.pid  # stale file left behind
    t0 = time.time()
    lock = acquire(tmp_path)
    assert time.time() - t0 < 1 and json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert acquire(tmp_path) is lock  # re-entrant within one process
    lock.close()
