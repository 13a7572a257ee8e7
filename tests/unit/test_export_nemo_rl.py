"""The NeMo-RL export's config mapping: every field accounted for, keys in their schema, batch maths."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from posttrain import PosttrainError
from posttrain.config.schema import DPOStageConfig, GRPOStageConfig, SFTStageConfig
from posttrain.export.jobs import submit_script
from posttrain.export.nemo_rl_map import JobConfig, map_stage, schema

SCHEMAS = {"sft": SFTStageConfig, "dpo": DPOStageConfig, "grpo": GRPOStageConfig}


def stage(kind: str, **kw):
    return OmegaConf.merge(OmegaConf.structured(SCHEMAS[kind]), kw)


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
@pytest.mark.parametrize("lora", [0, 8])
def test_every_field_is_mapped_or_dropped_once(kind: str, lora: int) -> None:
    job = map_stage(kind, stage(kind, lora_r=lora, warmup_steps=2))
    fields = {f for f in stage(kind) if f not in ("kind", "input", "seed", "backend")}
    assert fields <= set(job.mapped) | set(job.dropped)
    assert not set(job.mapped) & set(job.dropped), set(job.mapped) & set(job.dropped)
    job.check_keys(kind)  # every key we set exists in NeMo-RL's example config
    assert job.values[f"{kind}.max_num_steps"] == stage(kind).max_steps
    assert ("policy.dtensor_cfg.lora_cfg.dim" in job.values) == bool(lora)


def test_a_key_outside_their_schema_fails_naming_it() -> None:
    job = JobConfig("sft", values={"policy.optimiser.kwargs.lr": 1e-5})
    with pytest.raises(PosttrainError, match=r"stage.s: NeMo-RL sft config has no key 'policy.optimiser"):
        job.check_keys("s")
    assert "policy.optimizer.kwargs.lr" in schema()["configs"]["sft"]["keys"]


@settings(max_examples=50, deadline=None)
@given(
    per_device=st.integers(1, 64),
    accum=st.integers(1, 8),
    world=st.integers(1, 16),
    gens=st.sampled_from([1, 2, 4, 8, 16]),
)
def test_grpo_batch_maths(per_device: int, accum: int, world: int, gens: int) -> None:
    """TRL counts completions per device; NeMo-RL counts prompts per step and completions globally."""
    cfg = stage(
        "grpo",
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accum,
        num_generations=gens,
    )
    completions = per_device * accum * world
    if completions % gens:
        with pytest.raises(PosttrainError, match="not a multiple of num_generations"):
            map_stage("grpo", cfg, world)
        return
    v = map_stage("grpo", cfg, world).values
    assert v["grpo.num_prompts_per_step"] * v["grpo.num_generations_per_prompt"] == completions
    assert v["policy.train_global_batch_size"] == completions


@pytest.mark.parametrize("warm", [0, 3])
@pytest.mark.parametrize("kind", ["cosine", "constant", "linear", "polynomial"])
def test_scheduler_warmup_then_tail(warm: int, kind: str) -> None:
    job = map_stage("sft", stage("sft", warmup_steps=warm, lr_scheduler_type=kind, max_steps=20))
    sched = job.values["policy.scheduler"]
    assert len(sched) == (3 if warm else 1)
    if warm:
        assert sched[0]["kwargs"]["total_iters"] == warm and sched[-1] == {"milestones": [warm]}
    tail = sched[1 if warm else 0]["name"]
    want = {"cosine": "CosineAnnealingLR", "linear": "LinearLR"}.get(kind, "ConstantLR")
    assert tail.endswith(want)
    assert ("lr_scheduler_type" in job.dropped) == (kind == "polynomial")


def test_dpo_loss_types() -> None:
    v = map_stage("dpo", stage("dpo", loss_type="sigmoid+sft", loss_weights=[1.0, 0.2], beta=0.3)).values
    assert (v["dpo.preference_loss_weight"], v["dpo.sft_loss_weight"]) == (1.0, 0.2)
    assert v["dpo.reference_policy_kl_penalty"] == 0.3
    with pytest.raises(PosttrainError, match="ipo"):
        map_stage("dpo", stage("dpo", loss_type="ipo"))


def test_grpo_reward_and_baseline() -> None:
    v = map_stage("grpo", stage("grpo", scale_rewards="none", beta=0.04)).values
    assert v["grpo.normalize_rewards"] is False and v["grpo.use_leave_one_out_baseline"] is False
    assert v["loss_fn.reference_policy_kl_penalty"] == 0.04
    assert map_stage("grpo", stage("grpo", scale_rewards="group")).values["grpo.normalize_rewards"] is True


def test_submit_script_chains_afterok_and_checks_external_inputs(tmp_path) -> None:
    jobs = [
        {
            "stage": "sft",
            "job_dir": "/r/nemo_rl/01_sft",
            "input_checkpoint": "/r/00_init/checkpoint",
            "after": None,
        },
        {
            "stage": "grpo",
            "job_dir": "/r/nemo_rl/02_grpo",
            "input_checkpoint": "/r/nemo_rl/01_sft/hf",
            "after": "sft",
        },
    ]
    launcher = {"nodes": 2, "time": "04:00:00", "gpus_per_node": 8, "partition": "batch", "account": None}
    text = submit_script(jobs, launcher, "/opt/nemo-rl")
    path = tmp_path / "submit.sh"
    path.write_text(text)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    lines = [ln for ln in text.splitlines() if "sbatch" in ln]
    assert len(lines) == 2 and all("ray.sub" in ln and "--kill-on-invalid-dep=yes" in ln for ln in lines)
    assert "--dependency" not in lines[0] and '--dependency=afterok:"${job_id[sft]}"' in lines[1]
    assert "--gres=gpu:8" in lines[0] and "--partition=batch" in lines[0] and "--account" not in lines[0]
    assert "test -e /r/00_init/checkpoint" in text and "test -e /r/nemo_rl/01_sft/hf" not in text


def test_written_config_is_a_child_of_their_example(tmp_path) -> None:
    """``defaults`` names their example; the YAML round-trips; nested keys equal the dotted values."""
    job = map_stage("sft", stage("sft"))
    tree = job.nested()
    text = yaml.safe_dump({"defaults": "/opt/nemo-rl/examples/configs/sft.yaml", **tree})
    back = yaml.safe_load(text)
    for key, value in job.values.items():
        node = back
        for part in key.split("."):
            node = node[part]
        assert node == value
