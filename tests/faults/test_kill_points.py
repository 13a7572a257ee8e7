"""Fault tier (``pytest -m faults``, not in ``make test``): deterministic SIGKILLs across the whole
``nano2_smoke`` chain, each followed by the same command, compared with an unbroken run; plus a
copy of the finished run whose mined pairs were deleted. The kill points come from a traced
reference run, so they follow the pipeline when it changes. bench/faults.py draws random ones."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from posttrain.pipeline.faultinject import launch
from posttrain.pipeline.rundiff import compare_runs

pytestmark = pytest.mark.faults

SMOKE = ["pipeline=nano2_smoke"]


def run(run_dir: Path, env: dict, **kw) -> dict:
    return launch([*SMOKE, f"run_dir={run_dir}"], env=env, log=run_dir.with_suffix(".log"), **kw)


@pytest.fixture(scope="module")
def traced(tmp_path_factory) -> tuple[Path, list[dict], dict]:
    """An unbroken run with a fresh cache (the data gets built), its event trace and its env."""
    root = tmp_path_factory.mktemp("faults")
    env = {**os.environ, "POSTTRAIN_CACHE": str(root / "cache")}
    ref, trace = root / "ref", root / "ref.trace"
    assert run(ref, env, trace=trace)["rc"] == 0, ref.with_suffix(".log").read_text()[-3000:]
    return ref, [json.loads(line) for line in trace.read_text().splitlines()], env


def point(events: list[dict], event: str, where: str, *, last: bool = False) -> int:
    ns = [e["n"] for e in events if e["event"] == event and e["dir"] == where]
    assert ns, (event, where)
    return ns[-1] if last else ns[0]


CASES = {  # id -> (event, dir, last?, when, fresh data cache?)
    "data-build-before-publish": ("data_publish", "data", False, "before", True),
    "init-weights-cut": ("safetensors", "00_init", False, "mid", False),
    "sft-mid-training": ("train_step", "01_sft", True, "before", False),
    "preference-manifest-cut": ("write_json", "02_preference", True, "mid", False),
    "dpo-optimizer-cut": ("torch_save", "03_dpo", False, "mid", False),
    "grpo-before-first-trainer-checkpoint": ("train_step", "04_grpo", True, "before", False),
    "grpo-after-last-trainer-checkpoint": ("trainer_save", "04_grpo", True, "after", False),
    "eval-generation": ("generate", "05_eval", False, "before", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_kill_and_rerun_matches_the_unbroken_run(traced, tmp_path, case):
    ref, events, env = traced
    event, where, last, when, fresh = CASES[case]
    if fresh:  # only the tokenizer cached: the data is built again, and killed
        env = {**env, "POSTTRAIN_CACHE": str(tmp_path / "cache")}
        for tok in Path(traced[2]["POSTTRAIN_CACHE"]).glob("tokenizer-*"):
            shutil.copytree(tok, tmp_path / "cache" / tok.name)
    d = tmp_path / "run"
    assert run(d, env, fault=f"{event}:{point(events, event, where, last=last)}:{when}")["killed"]
    assert run(d, env)["rc"] == 0, d.with_suffix(".log").read_text()[-3000:]
    diffs = compare_runs(ref, d)
    assert not [x for x in diffs if x.explanation is None], diffs
    for log in d.glob("*/metrics.jsonl"):  # a killed attempt's steps are not logged twice
        recs = [json.loads(line) for line in log.read_text().splitlines()]
        kinds = [(r.get("step"), tuple(sorted(set(r) - {"time"}))) for r in recs]  # log, summary, eval
        assert len(kinds) == len(set(kinds)), (log, [k[0] for k in kinds])


def test_copy_without_mined_pairs_reruns_mining_not_a_confusing_dpo_error(traced, tmp_path):
    ref, _, env = traced
    d = tmp_path / "copy"
    shutil.copytree(ref, d, symlinks=True)  # as cp -a would
    shutil.rmtree(d / "02_preference" / "pairs")
    assert run(d, env)["rc"] == 0, d.with_suffix(".log").read_text()[-3000:]
    assert "02_preference/pairs/data-00000-of-00001.arrow is missing" in d.with_suffix(".log").read_text()
    assert (d / "02_preference" / "pairs").is_dir()
    assert not [x for x in compare_runs(ref, d) if x.explanation is None]
