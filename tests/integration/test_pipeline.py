"""The whole tiny chain: runs, skips finished stages, reruns only what changed, resumes after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.integration

SMOKE = ["pipeline=nano2_smoke"]


def run_cli(run_dir: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "posttrain.cli", "run", *SMOKE, f"run_dir={run_dir}", *overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if check and out.returncode != 0:
        raise AssertionError(out.stderr[-3000:])
    return out


def manifests(run_dir: Path) -> dict[str, dict]:
    return {
        json.loads(p.read_text())["stage"]: json.loads(p.read_text())
        for p in run_dir.glob("[0-9][0-9]_*/manifest.json")
    }


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("smoke")
    run_cli(run_dir)
    return run_dir


def test_full_chain_runs_and_writes_contract(smoke_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ms = manifests(smoke_run)
    assert set(ms) == {"init", "sft", "preference", "dpo", "grpo", "eval"}
    for name, m in ms.items():
        assert m["status"] == "done", (name, m.get("error"))
        for key in (
            "stage",
            "status",
            "fingerprint",
            "parent",
            "checkpoint",
            "metrics",
            "wandb_run_id",
            "started_at",
            "finished_at",
        ):
            assert key in m
    assert AutoModelForCausalLM.from_pretrained(smoke_run / ms["grpo"]["checkpoint"]) is not None
    assert AutoTokenizer.from_pretrained(smoke_run / ms["grpo"]["checkpoint"]).chat_template
    assert (
        ms["preference"]["metrics"]["pairs"] > 0
        and ms["dpo"]["metrics"]["pairs"] == ms["preference"]["metrics"]["pairs"]
    )
    g = ms["grpo"]["metrics"]  # rollout throughput and the generate / score / update split of training
    assert g["rollout_tokens"] > 0 and g["rollout_tokens_per_s"] > 0
    assert 0 < g["share_generate"] < 1 and 0 < g["share_update"] < 1 and g["share_score"] >= 0
    assert abs(g["share_generate"] + g["share_score"] + g["share_update"] - 1) < 1e-3
    assert 0 <= g["frac_reward_zero_std_first"] <= 1  # groups with no reward variance
    for stage, key in (
        ("preference", "generate_tokens"),
        ("eval", "generate_tokens"),
        ("eval", "init.generate_tokens"),
    ):
        assert ms[stage]["metrics"][key] > 0, (stage, key)
    assert "format_on" in ms["eval"]["metrics"] and "init.format_on" in ms["eval"]["metrics"]
    assert "sft.format_on" in ms["eval"]["metrics"]  # a stage name as a baseline
    report = json.loads((smoke_run / "05_eval" / "eval.json").read_text())
    for sl, d in report["deltas"]["sft"].items():  # every domain's paired delta reaches the manifest
        if sl.endswith("/all"):
            cat = sl.split("/")[0]
            assert ms["eval"]["metrics"][f"delta_vs_sft.accuracy_{cat}"] == d["delta"]
            assert ms["eval"]["metrics"][f"delta_vs_sft.accuracy_ci_{cat}"] == d["ci"]
    for sl, d in report["deltas_strict"]["sft"].items():  # and its strict (well-formed) delta
        if sl.endswith("/all"):
            assert ms["eval"]["metrics"][f"delta_vs_sft.strict_ci_{sl.split('/')[0]}"] == d["ci"]
    assert set(report["steps"]) == {"sft-init", "dpo-sft", "model-dpo"}  # baselines, then the model
    assert set(report["steps_strict"]) == set(report["steps"])
    steps = report["steps"]["sft-init"]["all/all"]
    assert ms["eval"]["metrics"]["sft.delta_vs_init.accuracy_all"] == steps["delta"]
    strict = report["steps_strict"]["sft-init"]["all/all"]
    assert ms["eval"]["metrics"]["sft.delta_vs_init.strict_all"] == strict["delta"]
    sweep = json.loads((smoke_run / "05_eval" / "budget" / "budget.json").read_text())  # sweep_budgets
    assert {(r["budget"], r["domain"]) for r in sweep["rows"]} >= {(0, "all"), (4, "all"), (None, "all")}
    # B = 0 closes every trace at once; thinking tokens there can only come from an answer that closes
    # "</think>" again (counted, and not well-formed), which a barely trained smoke model may do.
    zero = [r for r in sweep["rows"] if r["budget"] == 0]
    assert zero and all(r["forced_close"] == 1.0 for r in zero)
    assert all(r["mean_thinking_tokens"] == 0 or r["well_formed"] < 1 for r in zero)
    assert (smoke_run / "05_eval" / "eval.md").exists() and (smoke_run / "01_sft" / "metrics.jsonl").exists()
    status = subprocess.run(
        [sys.executable, "-m", "posttrain.cli", "status", str(smoke_run), "json=true"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(status.stdout)
    assert [r["stage"] for r in rows] == ["init", "sft", "preference", "dpo", "grpo", "eval"]


def test_export_nemo_rl_writes_every_training_stage(smoke_run):
    """`posttrain export nemo_rl` on a finished run: one job per SFT/DPO/GRPO stage, nothing retrained,
    and the data round-trips: our template renders the exported messages as it renders the views."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from posttrain.inference.generate import render_prompts

    before = manifests(smoke_run)
    cmd = [sys.executable, "-m", "posttrain.cli", "export", "nemo_rl", *SMOKE, f"out={smoke_run}"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert all(manifests(smoke_run)[s]["started_at"] == before[s]["started_at"] for s in before)
    root = smoke_run / "nemo_rl"
    report = json.loads((root / "export.json").read_text())
    jobs = {j["stage"]: j for j in report["jobs"]}
    assert set(jobs) == {"sft", "dpo", "grpo"} and set(report["not_exported"]) == {"preference", "eval"}
    assert jobs["sft"]["after"] is None and jobs["dpo"]["after"] is None and jobs["grpo"]["after"] == "dpo"
    assert jobs["dpo"]["input_checkpoint"] == str(smoke_run / before["preference"]["checkpoint"])
    assert subprocess.run(["bash", "-n", str(root / "submit.sh")]).returncode == 0
    tok = AutoTokenizer.from_pretrained(str(smoke_run / "00_init" / "checkpoint"))
    data = smoke_run / "data"

    view = load_from_disk(str(data / "sft"))["train"].to_list()
    exported = [json.loads(ln) for ln in open(root / "01_sft" / "data" / "train.jsonl")]
    assert len(exported) == len(view)
    for v, e in zip(view, exported):
        assert tok.apply_chat_template(e["messages"], tools=e.get("tools"), tokenize=False) == (
            tok.apply_chat_template(v["messages"], tools=json.loads(v["tools"] or "null"), tokenize=False)
        )

    pairs = load_from_disk(str(smoke_run / "02_preference" / "pairs")).to_list()
    dpo = jobs["dpo"]["data"]
    assert dpo["train"] + dpo["validation"] + dpo["skipped"] == len(pairs) and dpo["skipped"] == 0
    recs = [
        json.loads(ln)
        for f in ("validation", "train")
        for ln in open(root / "03_dpo" / "data" / f"{f}.jsonl")
    ]
    assert render_prompts(tok, [r["context"] for r in recs]) == [p["prompt"] for p in pairs]

    rl = {r["uuid"]: r for r in load_from_disk(str(data / "rl"))["train"].to_list()}
    grpo, grpo_cfg = jobs["grpo"]["data"], json.loads((smoke_run / "04_grpo" / "config.json").read_text())
    stream = min(grpo_cfg["max_prompts"] or len(rl), len(rl))  # the prompts the GRPO stage trained on
    skipped = [json.loads(ln) for ln in open(root / "04_grpo" / "data" / "skipped.jsonl")]
    assert grpo["train_on"] + grpo.get("train_off", 0) + len(skipped) == stream
    assert skipped and all(r["category"] != "math" for r in skipped)
    for f in ("train_on", "train_off"):
        for ln in open(root / "04_grpo" / "data" / f"{f}.jsonl"):
            r = json.loads(ln)
            assert r["output"] == str(json.loads(rl[r["uuid"]]["metadata"])["answer"])
    config = yaml.safe_load((root / "04_grpo" / "config.yaml").read_text())
    assert config["defaults"].endswith("examples/configs/grpo_math_1B.yaml")
    assert config["policy"]["model_name"] == str(root / "03_dpo" / "hf")
    assert [d["system_prompt_file"].rsplit("/", 1)[1] for d in config["data"]["train"]][0] == "think.txt"


def test_rerun_skips_and_beta_change_reruns_downstream_only(smoke_run):
    before = manifests(smoke_run)
    run_cli(smoke_run)
    same = manifests(smoke_run)
    assert all(same[s]["started_at"] == before[s]["started_at"] for s in before), "second run did training"
    run_cli(smoke_run, "stage.dpo.beta=0.2")
    after = manifests(smoke_run)
    rerun = {s for s in before if after[s]["started_at"] != before[s]["started_at"]}
    assert rerun == {"dpo", "grpo", "eval"}


def test_missing_input_checkpoint_fails_before_training(tmp_path):
    out = run_cli(tmp_path / "r", "stage.sft.input=/nonexistent/ckpt", check=False)
    assert out.returncode == 2 and "/nonexistent/ckpt" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r" / "01_sft" / "trainer").exists()


def test_failed_stage_is_marked_and_downstream_does_not_start(tmp_path):
    run_dir = tmp_path / "r"
    out = run_cli(run_dir, "+stage.dpo.trainer_args={no_such_arg: 1}", check=False)
    assert out.returncode != 0
    ms = manifests(run_dir)
    assert ms["dpo"]["status"] == "failed" and "no_such_arg" in ms["dpo"]["error"]
    assert "grpo" not in ms and ms["sft"]["status"] == "done"
    assert (run_dir / "01_sft" / "checkpoint" / "model.safetensors").exists()


def test_sigkill_mid_stage_resumes_from_last_step(tmp_path):
    """Kill SFT after its first saved checkpoint; the rerun resumes from it and ends bit-equal to an
    unbroken run (this caught the Trainer silently resuming NemotronH from its initial weights)."""
    steps = ["stage.sft.max_steps=12", "stage.sft.save_steps=3", "pipeline.stages=[sft]"]
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    run_cli(ref_dir, *steps)
    cmd = [sys.executable, "-m", "posttrain.cli", "run", *SMOKE, f"run_dir={run_dir}", *steps]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    trainer = run_dir / "01_sft" / "trainer"
    deadline = time.time() + 300
    while time.time() < deadline and not list(trainer.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(int(p.name.split("-")[1]) for p in trainer.glob("checkpoint-*"))
    assert saved and saved[-1] < 12, saved
    assert json.loads((run_dir / "01_sft" / "manifest.json").read_text())["status"] == "running"
    run_cli(run_dir, *steps)
    m = manifests(run_dir)["sft"]
    assert m["status"] == "done" and m["metrics"]["resumed_from"].endswith(f"checkpoint-{saved[-1]}")
    assert m["metrics"]["global_step"] == 12
    a = load_file(ref_dir / "01_sft" / "checkpoint" / "model.safetensors")
    b = load_file(run_dir / "01_sft" / "checkpoint" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_backend_nemo_rl_writes_the_job_then_takes_its_checkpoint(tmp_path):
    """``stage.sft.backend=nemo_rl``: the first run writes the job and stops with a one-line message; once
    the job's ``hf/`` checkpoint exists (here a copy of the input, standing in for NeMo-RL's output: NeMo-RL
    cannot run on this machine) a rerun finishes the stage with it, without training."""
    import shutil

    args = ["pipeline.stages=[sft]", "stage.sft.backend=nemo_rl"]
    first = run_cli(tmp_path, *args, check=False)
    assert first.returncode == 2
    job = tmp_path / "nemo_rl" / "01_sft"
    err = first.stderr.strip().splitlines()[-1]
    assert (
        err.startswith("error: stage sft: backend=nemo_rl wrote its NeMo-RL job")
        and f"{job}/submit.sh" in err
    )
    assert json.loads((tmp_path / "01_sft" / "manifest.json").read_text())["status"] == "failed"
    config = yaml.safe_load((job / "config.yaml").read_text())
    assert config["policy"]["model_name"] == str(tmp_path / "00_init" / "checkpoint")
    assert subprocess.run(["bash", "-n", str(job / "submit.sh")]).returncode == 0
    shutil.copytree(tmp_path / "00_init" / "checkpoint", job / "hf")
    run_cli(tmp_path, *args)
    m = json.loads((tmp_path / "01_sft" / "manifest.json").read_text())
    assert m["status"] == "done" and m["metrics"] == {"backend": "nemo_rl"}
    assert (tmp_path / "01_sft" / "checkpoint").resolve() == (job / "hf").resolve()
    assert not (tmp_path / "01_sft" / "trainer").exists()
