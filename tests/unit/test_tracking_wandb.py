"""Per-stage W&B runs, offline: group/job_type/config land in the run's transaction log, secrets are
redacted, a resumed stage continues the same run id, the checkpoint is logged as an artifact, and an
HF Trainer with ``report_to=["wandb"]`` logs into the stage's run instead of starting its own."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from posttrain import PosttrainError
from posttrain.tracking.wandb import REDACTED, redact, resolve_mode, stage_run

ROOT = Path(__file__).resolve().parents[2]


def wandb_records(run_file: Path) -> list:
    """Decode a ``run-<id>.wandb`` transaction log (a 7-byte ``:W&B`` header, then LevelDB-log
    framed blocks of 32 KiB, each record a ``wandb_internal_pb2.Record``). A record still being
    written (its payload runs past the end of the file) ends the list; it is not parsed."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf, out = run_file.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:
            pos += left
            continue
        if pos + 7 + length > len(data):
            break  # wandb-core is still writing this record; the caller polls again
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


def offline_runs(run_dir: Path, timeout: float = 20.0) -> dict[Path, list]:
    """The decoded logs of every offline run folder under ``<run_dir>/wandb``. wandb-core may still
    be flushing a log for a moment after ``finish()`` returns, so wait until each has its exit record."""
    deadline = time.time() + timeout
    while True:
        runs = {
            p: wandb_records(next(p.glob("run-*.wandb"))) for p in (run_dir / "wandb").glob("offline-run-*")
        }
        done = all(any(r.WhichOneof("record_type") == "exit" for r in recs) for recs in runs.values())
        if done or time.time() > deadline:
            return runs
        time.sleep(0.1)


def first(records: list, kind: str):
    return next(getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind)


def cfg(**kw) -> SimpleNamespace:
    return SimpleNamespace(
        **{"kind": "wandb", "project": "pt", "entity": None, "mode": None, "tags": []} | kw
    )


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    monkeypatch.delenv("WANDB_DATA_DIR", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return tmp_path / "myrun"


def make_ckpt(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"\0" * 64)
    return path


def test_redact_nested_and_case_insensitive():
    cfg_in = {
        "WANDB_API_KEY": "k",
        "a": {"hub_token": "t", "lr": 1e-3},
        "l": [{"Password": "p"}],
        "apikey": 1,
    }
    out = redact(cfg_in)
    assert out == {
        "WANDB_API_KEY": REDACTED,
        "a": {"hub_token": REDACTED, "lr": 1e-3},
        "l": [{"Password": REDACTED}],
        "apikey": REDACTED,
    }
    assert cfg_in["a"]["hub_token"] == "t"  # the input is not modified


def test_resolve_mode(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert resolve_mode(cfg()) == "offline"
    assert resolve_mode(cfg(mode="disabled")) == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode(cfg()) == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    with pytest.raises(PosttrainError) as e:
        resolve_mode(cfg(mode="online"))
    assert "\n" not in str(e.value) and "WANDB_API_KEY" in str(e.value)
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password " + "x" * 40 + "\n")
    (tmp_path / "netrc").chmod(0o600)
    assert resolve_mode(cfg(mode="online")) == "online"
    with pytest.raises(PosttrainError, match="unknown W&B mode"):
        resolve_mode(cfg(mode="onlin"))


def _py(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def test_online_without_key_fails_fast_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env |= {"HOME": str(tmp_path), "NETRC": str(tmp_path / "none"), "PYTHONPATH": str(ROOT)}
    code = (
        "from types import SimpleNamespace as N; from pathlib import Path\n"
        "from posttrain.tracking.wandb import stage_run\n"
        "c = N(kind='wandb', project='p', entity=None, mode='online', tags=[])\n"
        "with stage_run(c, run_dir=Path('r'), stage='sft', kind='sft', config={}): pass\n"
    )
    t0 = time.time()
    p = _py(code, env, tmp_path)
    assert p.returncode != 0 and time.time() - t0 < 60
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("posttrain.PosttrainError: logger.mode=online but no W&B credentials")
    assert not (tmp_path / "r").exists()


def test_jsonl_logger_is_a_null_object_without_importing_wandb(tmp_path):
    code = (
        "import sys; from types import SimpleNamespace as N; from pathlib import Path\n"
        "from posttrain.tracking.wandb import stage_run\n"
        "with stage_run(N(kind='jsonl'), run_dir=Path('r'), stage='sft', kind='sft', config={}) as h:\n"
        "    h.log({'x': 1}); h.summary({'y': 2})\n"
        "assert (h.run_id, h.report_to, h.artifact) == (None, [], None), h\n"
        "assert 'wandb' not in sys.modules\n"
    )
    p = _py(code, dict(os.environ, PYTHONPATH=str(ROOT)), tmp_path)
    assert p.returncode == 0, p.stderr
    assert not (tmp_path / "r").exists()


def test_offline_stage_run_config_group_job_type_and_artifact(offline, tmp_path):
    import wandb

    ckpt = make_ckpt(offline / "01_sft" / "checkpoint")
    config = {"learning_rate": 1e-3, "trainer_args": {"hub_token": "hf_secret"}, "api_key": "abc"}
    with stage_run(
        cfg(tags=["t1"]), run_dir=offline, stage="sft", kind="sft", config=config, checkpoint_dir=ckpt
    ) as h:
        assert wandb.run is not None and wandb.run.id == h.run_id and h.report_to == ["wandb"]
        assert os.environ["WANDB_SILENT"] == "true"
        h.log({"custom": 1.0})
    assert wandb.run is None  # finished
    assert "WANDB_SILENT" not in os.environ and "WANDB_DATA_DIR" not in os.environ  # env restored
    assert h.artifact == "myrun-sft:latest"
    (rdir, records), *rest = offline_runs(offline).items()
    assert not rest and f"-{h.run_id}" in rdir.name
    run = first(records, "run")
    assert (run.run_group, run.job_type, run.display_name, run.project) == ("myrun", "sft", "sft", "pt")
    assert list(run.tags) == ["t1"]
    conf = {u.key: u.value_json for u in run.config.update}
    assert conf["api_key"] == f'"{REDACTED}"' and REDACTED in conf["trainer_args"]
    assert "hf_secret" not in conf["trainer_args"] and conf["learning_rate"] == "0.001"
    art = first(records, "artifact")
    assert (art.name, art.type) == ("myrun-sft", "model")
    assert {c.path for c in art.manifest.contents} == {"config.json", "model.safetensors"}
    assert all(c.local_path.startswith(str(ckpt)) for c in art.manifest.contents)  # read in place, no copy
    assert first(records, "exit").exit_code == 0


def test_symlinked_checkpoint_is_logged_as_reference(offline):
    src = make_ckpt(offline / "00_init" / "checkpoint")
    link = offline / "05_eval" / "checkpoint"
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(src, link.parent))
    with stage_run(
        cfg(),
        run_dir=offline,
        stage="eval",
        kind="eval",
        config={},
        checkpoint_dir=link,
        parent_artifact="x:latest",
    ) as h:
        pass
    records = next(iter(offline_runs(offline).values()))
    contents = list(first(records, "artifact").manifest.contents)
    assert contents and all(c.ref.startswith("file://" + str(src.resolve())) for c in contents)
    assert not any(c.local_path for c in contents)
    assert "x:latest" in {u.key: u.value_json for u in first(records, "run").config.update}["lineage"]
    assert h.artifact == "myrun-eval:latest"


def test_resumed_stage_continues_the_same_run(offline):
    with pytest.raises(RuntimeError):
        with stage_run(cfg(), run_dir=offline, stage="dpo", kind="dpo", config={}) as h1:
            raise RuntimeError("crashed")
    with pytest.raises(SystemExit):  # what the runner raises after a preemption save + requeue
        with stage_run(cfg(), run_dir=offline, stage="dpo", kind="dpo", config={}, run_id=h1.run_id) as h2:
            raise SystemExit(75)
    with stage_run(cfg(), run_dir=offline, stage="dpo", kind="dpo", config={}, run_id=h1.run_id) as h3:
        pass
    assert h3.run_id == h2.run_id == h1.run_id and h1.artifact is None
    runs = offline_runs(offline)
    assert len(runs) == 3 and all(f"-{h1.run_id}" in p.name for p in runs)
    assert {first(r, "run").run_id for r in runs.values()} == {h1.run_id}
    exits = [first(r, "exit").exit_code for _, r in sorted(runs.items())]
    assert exits == [1, 75, 0]  # crashed, preempted, then finished; `wandb sync` joins them by id
    preempting = [
        any(x.WhichOneof("record_type") == "preempting" for x in r) for _, r in sorted(runs.items())
    ]
    assert preempting == [False, True, False]


def test_hf_trainer_logs_into_the_stage_run(offline, tiny):
    import torch
    import wandb
    from transformers import Trainer, TrainingArguments

    model, tok = tiny
    ids = torch.randint(0, len(tok), (4, 16))
    data = [{"input_ids": x, "labels": x} for x in ids]
    with stage_run(cfg(), run_dir=offline, stage="sft", kind="sft", config={"stage": "sft"}) as h:
        args = TrainingArguments(
            output_dir=str(offline / "trainer"),
            max_steps=2,
            logging_steps=1,
            per_device_train_batch_size=2,
            use_cpu=True,
            report_to=h.report_to,
            save_strategy="no",
            disable_tqdm=True,
        )
        Trainer(model=model, args=args, train_dataset=data).train()
        assert wandb.run is not None and wandb.run.id == h.run_id
    runs = offline_runs(offline)
    assert len(runs) == 1, runs  # no second run started by the Trainer's WandbCallback
    records = next(iter(runs.values()))
    logged = {
        i.key or "/".join(i.nested_key)
        for r in records
        if r.WhichOneof("record_type") == "history"
        for i in r.history.item
    }
    assert {"train/loss", "train/global_step"} <= logged
    updates = {u.key for r in records if r.WhichOneof("record_type") == "config" for u in r.config.update}
    assert "max_steps" in updates  # the callback's config.update went to this run


def test_init_failure_is_one_line_and_restores_env(offline, monkeypatch):
    import wandb

    def boom(**kw):
        raise wandb.errors.CommError("Network error (ConnectTimeout), entering retry loop.\nmore detail")

    monkeypatch.setattr(wandb, "init", boom)
    with pytest.raises(PosttrainError) as e:
        with stage_run(cfg(), run_dir=offline, stage="sft", kind="sft", config={}):
            pytest.fail("the body must not run")
    assert str(e.value).startswith("W&B init failed for stage sft (mode=offline): Network error")
    assert "\n" not in str(e.value) and "WANDB_SILENT" not in os.environ
