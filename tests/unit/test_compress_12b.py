"""``nano2_compress_12b`` on the CPU, without the model: the plan builds and every reference resolves,
its prune targets are the 9B's shape and pass the checks against the 12B's config, the memory
planner puts the 12B over the A10G budget at 128k and the pruned shape under it, and every stage
renders an sbatch job."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from posttrain import PosttrainError
from posttrain.cli import compose
from posttrain.compress.memory import plan_memory
from posttrain.compress.memory_cli import load_arch
from posttrain.compress.nas import Width, candidate_arch
from posttrain.launch.slurm import render_sbatch
from posttrain.launch.slurm_pipeline import job_spec
from posttrain.pipeline.plan import build_plan

A10G = 22.06 * 0.95 - 1.3


@pytest.fixture
def cfg(tmp_path):
    text = tmp_path / "text.jsonl"
    text.write_text('{"text": "pretraining-style text"}\n')
    over = ["pipeline=nano2_compress_12b", f"run_dir={tmp_path / 'run'}", f"stage.distill.text_path={text}"]
    return compose([*over, "launcher.partition=gpu"])


def test_the_plan_builds_and_every_reference_resolves(cfg):
    plan = {p.name: p for p in build_plan(cfg)}
    assert list(plan) == ["prune", "distill", "eval"]
    assert plan["prune"].input == "init" and plan["distill"].input == "prune"
    assert plan["distill"].refs == {"teacher": "init"}
    assert plan["eval"].input == "distill" and set(plan["eval"].refs.values()) == {"init", "prune"}
    assert (
        cfg.model.path == "nvidia/NVIDIA-Nemotron-Nano-12B-v2" and cfg.deepspeed.zero_optimization.stage == 3
    )


def test_the_targets_are_the_9b_shape(cfg):
    nine = compose(["model=nemotron_nano_9b_v2"]).model
    p = cfg.stage.prune
    assert (p.hidden_size, p.intermediate_size, p.mamba_num_heads) == (
        nine.hidden_size, nine.intermediate_size, nine.mamba_num_heads,
    )  # fmt: skip
    assert p.num_layers == len(nine.hybrid_override_pattern) == 56


def test_the_memory_planner_at_both_ends(cfg):
    twelve = load_arch("nemotron_nano_12b_v2")
    before = plan_memory(twelve, context=131072, batch=1, budget_gib=A10G)
    assert not before.fits and before.weights_gib > A10G  # the weights alone do not fit
    p = cfg.stage.prune
    nine = load_arch("nemotron_nano_9b_v2")
    target = candidate_arch(
        twelve, nine.pattern, Width(p.hidden_size, p.intermediate_size, p.mamba_num_heads)
    )
    after = plan_memory(target, context=131072, batch=1, budget_gib=A10G)
    assert after.fits and after == plan_memory(nine, context=131072, batch=1, budget_gib=A10G)
    assert after.params == 8_888_227_328


@pytest.mark.parametrize(
    ("over", "key"),
    [
        (["stage.prune.hidden_size=6000"], "hidden_size"),  # wider than the 12B
        (["stage.prune.mamba_num_heads=100"], "mamba_num_heads"),  # not a multiple of n_groups=8
        (["stage.prune.num_layers=70"], "num_layers"),
    ],
)
def test_a_bad_target_fails_at_plan_time_naming_the_key(cfg, over, key):
    bad = OmegaConf.merge(cfg, OmegaConf.from_dotlist(over))
    with pytest.raises(PosttrainError, match=rf"^stage\.prune\.{key}: "):
        build_plan(bad)


def test_without_a_text_source_the_plan_names_the_field(tmp_path):
    with pytest.raises(
        PosttrainError, match=r"^stage\.distill\.text_fraction: 0.3 needs a plain-text source: set text_path"
    ):
        build_plan(compose(["pipeline=nano2_compress_12b", f"run_dir={tmp_path}"]))


def test_every_stage_renders_an_sbatch_job(cfg):
    specs = {p.name: job_spec(cfg, p.name, ["pipeline=nano2_compress_12b"], "/work") for p in build_plan(cfg)}
    assert specs["distill"].nproc_per_node == 8 and specs["distill"].gpus_per_node == 8
    assert specs["prune"].nproc_per_node == 1 and specs["eval"].gpus_per_node == 1
    for name, spec in specs.items():
        script = render_sbatch(spec)
        assert f"only_stage={name}" in script and "#SBATCH --partition=gpu" in script
