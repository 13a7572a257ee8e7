"""The prune stage's plumbing: bad targets fail when the plan is built, naming ``stage.<name>.<field>``
(checked against the input model when its config can be read without weights, else at run time with
the same message); calibration batches are right-padded renderings of the sft rows."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset, DatasetDict
from omegaconf import OmegaConf
from transformers import LlamaConfig, LlamaForCausalLM

from posttrain import PosttrainError
from posttrain.cli import compose
from posttrain.config.schema import PruneStageConfig
from posttrain.pipeline.plan import build_plan
from posttrain.stages.base import StageInputs
from posttrain.stages.prune import calibration_batches, calibration_texts, run

PRUNE = ["+stage@stage.prune=prune", "pipeline.stages=[prune]"]
AFTER_SFT = ["+stage@stage.prune=prune", "pipeline.stages=[sft,prune]"]
# the tiny model: 8 layers M-M*-M*-, hidden 128, FFN 256, 8 Mamba heads, 4 query / 2 KV heads
BAD = [
    ([*PRUNE, "stage.prune.num_layers=9"], "num_layers", "9 is larger than the model's 8 layers"),
    ([*PRUNE, "stage.prune.hidden_size=129"], "hidden_size", "larger than the model's hidden_size 128"),
    ([*AFTER_SFT, "stage.prune.intermediate_size=512"], "intermediate_size", "larger"),
    ([*PRUNE, "model.n_groups=2", "stage.prune.mamba_num_heads=3"], "mamba_num_heads", "n_groups=2"),
    ([*PRUNE, "stage.prune.num_attention_heads=3"], "num_attention_heads", "num_key_value_heads=2"),
    (
        [*PRUNE, "model.hybrid_override_pattern=M*M*", "stage.prune.intermediate_size=8"],
        "intermediate_size",
        "no layer",
    ),
    ([*PRUNE, "stage.prune.drop_layers=[8]"], "drop_layers", "layers 0..7"),
    ([*PRUNE, "stage.prune.num_layers=4", "stage.prune.drop_layers=[1]"], "drop_layers", "not both"),
    ([*PRUNE, "stage.prune.hidden_size=0"], "hidden_size", "must be an integer >= 1"),
    ([*PRUNE, "stage.prune.depth_importance=cosine"], "depth_importance", "unknown value 'cosine'"),
    ([*PRUNE, "stage.prune.calibration_samples=0"], "calibration_samples", "must be >= 1"),
]


@pytest.mark.parametrize(("overrides", "key", "why"), BAD, ids=[f"{b[1]}:{b[2][:14]}" for b in BAD])
def test_bad_prune_targets_fail_when_the_plan_is_built(overrides, key, why):
    with pytest.raises(PosttrainError) as e:
        build_plan(compose(overrides))
    assert str(e.value).startswith(f"stage.prune.{key}: ") and why in str(e.value), str(e.value)


def test_good_targets_plan_and_a_pruned_input_is_checked_later():
    ok = [*PRUNE, "stage.prune.num_layers=6", "stage.prune.hidden_size=96", "stage.prune.mamba_num_heads=4"]
    (p,) = build_plan(compose(ok))
    assert p.kind == "prune" and p.input == "init" and p.cfg.calibration_samples == 1024
    # the second prune reads the first one's output, whose sizes exist only once it has run
    two = [
        "+stage@stage.prune=prune",
        "+stage@stage.prune2=prune",
        "pipeline.stages=[prune,prune2]",
        "stage.prune.hidden_size=96",
        "stage.prune2.hidden_size=100",
    ]
    assert [p.name for p in build_plan(compose(two))] == ["prune", "prune2"]


def test_an_external_checkpoint_input_is_checked_from_its_config(tmp_path):
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    bad = [*PRUNE, f"stage.prune.input={tmp_path}", "stage.prune.mamba_num_heads=2"]
    with pytest.raises(PosttrainError, match=r"^stage\.prune\.mamba_num_heads: the model has no layer"):
        build_plan(compose(bad))


def _rows(n: int = 6) -> list[dict]:
    tools = [{"type": "function", "function": {"name": "add", "parameters": {}}}]
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i}+{i}?", "reasoning_content": None},
                {"role": "assistant", "content": f"{2 * i}" + " and more" * i, "reasoning_content": None},
            ],
            "tools": json.dumps(tools) if i == 0 else None,
        }
        for i in range(n)
    ]


def test_run_time_check_names_the_same_key(tmp_path, tiny):
    from posttrain.models import save_checkpoint

    ckpt = save_checkpoint(*tiny, tmp_path / "in")
    cfg = OmegaConf.structured(PruneStageConfig(hidden_size=1000))
    inputs = StageInputs(
        name="p2", stage_dir=tmp_path / "p2", checkpoint=str(ckpt), data_dir=tmp_path / "none"
    )
    with pytest.raises(PosttrainError, match=r"^stage\.p2\.hidden_size: 1000 is larger than the model's"):
        run(cfg, inputs)


def test_calibration_rows_render_with_the_template_and_pad_right(tmp_path, tokenizer):
    rows = _rows()
    ds = Dataset.from_list(rows)
    DatasetDict(train=ds, validation=ds, test=ds).save_to_disk(str(tmp_path / "sft"))
    inputs = StageInputs(name="p", stage_dir=tmp_path / "p", checkpoint="x", data_dir=tmp_path)
    texts = calibration_texts(inputs, tokenizer, 4)
    assert len(texts) == 4 and calibration_texts(inputs, tokenizer, 4) == texts  # seeded
    want = [
        tokenizer.apply_chat_template(r["messages"], tools=json.loads(r["tools"] or "null"), tokenize=False)
        for r in rows
    ]
    assert sorted(calibration_texts(inputs, tokenizer, 100)) == sorted(want)  # every row, tools included
    bs = calibration_batches(tokenizer, texts, max_length=16, batch_size=3)
    assert [b["input_ids"].shape[0] for b in bs] == [3, 1]
    m = bs[0]["attention_mask"]
    assert m.shape[1] <= 16 and torch.all(m[:, :-1] >= m[:, 1:])  # ones, then zeros: right padding
