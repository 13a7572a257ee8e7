"""The distill stage: at step 1 its loss is KL(teacher‖student) computed directly on the same batch and
mask; a teacher equal to the student gives 0; a few steps lower the KL; a teacher with another
vocabulary fails when the plan is built (or at run time when only then known), naming the key."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset, DatasetDict
from omegaconf import OmegaConf
from transformers import LlamaConfig, LlamaForCausalLM

from posttrain import PosttrainError
from posttrain.cli import compose
from posttrain.compress import kd
from posttrain.compress.kd import DistillCollator
from posttrain.config.schema import DistillStageConfig, ModelConfig
from posttrain.models import build_tiny_model, save_checkpoint
from posttrain.pipeline.plan import build_plan
from posttrain.stages.base import StageInputs
from posttrain.stages.distill import build_trainer, mix_text, run

DISTILL = ["+stage@stage.distill=distill", "pipeline.stages=[sft,distill]", "stage.distill.teacher=sft"]


def _rows(n: int = 8) -> list[dict]:
    tools = [{"type": "function", "function": {"name": "add", "parameters": {}}}]
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i}+{i}?", "reasoning_content": None},
                {"role": "assistant", "content": f"{2 * i}" + " and more" * i, "reasoning_content": None},
            ],
            "tools": json.dumps(tools) if i == 0 else None,
            "category": "math",
        }
        for i in range(n)
    ]


def _setup(tmp_path, tokenizer, **cfg_kw):
    ds = Dataset.from_list(_rows())
    DatasetDict(train=ds, validation=ds, test=ds).save_to_disk(str(tmp_path / "sft"))
    kw = dict(teacher="t", per_device_train_batch_size=4, logging_steps=1, save_steps=100, use_cpu=True)
    cfg = OmegaConf.structured(DistillStageConfig(**(kw | cfg_kw)))
    inputs = StageInputs(name="d", stage_dir=tmp_path / "d", checkpoint="x", data_dir=tmp_path)
    return cfg, inputs


def _direct_kl(student, teacher, batch, tau: float = 1.0) -> float:
    """mean over masked tokens of sum_v p_T log(p_T / p_S), written out independently of the stage."""
    with torch.no_grad():
        s = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits / tau
        t = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits / tau
    p_t, lp_t, lp_s = t.softmax(-1), t.log_softmax(-1), s.log_softmax(-1)
    per_pos = (p_t * (lp_t - lp_s)).sum(-1)[:, :-1]  # position i predicts token i+1
    mask = (batch["labels"][:, 1:] != -100).float()
    return float((per_pos * mask).sum() / mask.sum())


@pytest.fixture
def models(tokenizer):
    student, _ = build_tiny_model(ModelConfig(seed=0), tokenizer=tokenizer)
    teacher, _ = build_tiny_model(ModelConfig(seed=1), tokenizer=tokenizer)
    return student, teacher.eval()


def test_collator_masks_assistant_tokens_and_text_rows_but_their_first(tokenizer):
    col = DistillCollator(tokenizer, max_length=64)
    chat = {"messages": _rows(2)[1]["messages"], "tools": None, "text": None}
    b = col([chat, {"messages": None, "tools": None, "text": "plain words here for the loss"}])
    ids, labels, attn = b["input_ids"], b["labels"], b["attention_mask"]
    n_text = len(tokenizer("plain words here for the loss", add_special_tokens=False)["input_ids"])
    assert labels[1, 0] == -100 and torch.equal(labels[1, 1:n_text], ids[1, 1:n_text])
    assert (labels[1, n_text:] == -100).all() and attn[1].sum() == n_text
    answer = tokenizer.decode(ids[0][labels[0] != -100])
    assert "2 and more" in answer and "What is" not in answer  # only the assistant turn


def test_step_one_loss_is_the_forward_kl_on_the_same_batch(tmp_path, tokenizer, models):
    student, teacher = models
    cfg, inputs = _setup(tmp_path, tokenizer, max_steps=1, learning_rate=1e-3)
    trainer = build_trainer(cfg, inputs, student, teacher, tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    want = _direct_kl(student, teacher, batch)
    assert want > 1e-3  # two different random models
    assert trainer.compute_loss(student, dict(batch)).item() == pytest.approx(want, rel=1e-5)
    trainer.distill_temperature = 2.0  # tau reaches the loss (GKD's own temperature would not)
    hot = trainer.compute_loss(student, dict(batch)).item()
    assert hot == pytest.approx(_direct_kl(student, teacher, batch, tau=2.0), rel=1e-5) and hot != want
    trainer.distill_temperature = 1.0
    trainer.train()  # the logged step-1 loss is the loss of that same first batch
    assert trainer.state.log_history[0]["loss"] == pytest.approx(want, rel=1e-5)


def _direct_ce(student, batch) -> float:
    """mean over masked tokens of -log p_S(next token), written out independently of the stage."""
    with torch.no_grad():
        lp = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.log_softmax(
            -1
        )
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    nll = -lp[:, :-1].gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return float(nll[mask].mean())


def test_the_ce_control_trains_on_the_same_batch_with_plain_cross_entropy(tmp_path, tokenizer, models):
    student, teacher = models
    cfg, inputs = _setup(tmp_path, tokenizer, max_steps=1, learning_rate=1e-3, loss="ce")
    trainer = build_trainer(cfg, inputs, student, teacher, tokenizer)
    kl_cfg, _ = _setup(tmp_path, tokenizer, max_steps=1, learning_rate=1e-3)
    kl_batch = next(iter(build_trainer(kl_cfg, inputs, student, teacher, tokenizer).get_train_dataloader()))
    batch = next(iter(trainer.get_train_dataloader()))
    assert all(torch.equal(batch[k], kl_batch[k]) for k in batch)  # the same tokens as the distill run
    want = _direct_ce(student, batch)
    assert want != pytest.approx(_direct_kl(student, teacher, batch), rel=1e-3)
    assert trainer.compute_loss(student, dict(batch)).item() == pytest.approx(want, rel=1e-5)
    trainer.train()
    assert trainer.state.log_history[0]["loss"] == pytest.approx(want, rel=1e-5)


def test_heldout_scores_the_masked_tokens_and_restores_train_mode(tokenizer, models):
    student, teacher = models
    rows = [{"messages": r["messages"], "tools": r["tools"]} for r in _rows(5)]
    bs = kd.batches(tokenizer, rows, max_length=64, batch_size=2)
    assert [len(b["input_ids"]) for b in bs] == [2, 2, 1]
    student.train()
    got = kd.heldout(student, bs, teacher)
    assert student.training
    n = sum(int((b["labels"][:, 1:] != -100).sum()) for b in bs)
    ce = sum(_direct_ce(student, b) * int((b["labels"][:, 1:] != -100).sum()) for b in bs) / n
    kl = sum(_direct_kl(student, teacher, b) * int((b["labels"][:, 1:] != -100).sum()) for b in bs) / n
    assert (
        got["tokens"] == n
        and got["ce"] == pytest.approx(ce, rel=1e-5)
        and got["kl"] == pytest.approx(kl, rel=1e-5)
    )
    assert "kl" not in kd.heldout(student, bs) and kd.heldout(teacher, bs, teacher)["kl"] < 1e-6


def test_a_teacher_equal_to_the_student_gives_zero(tmp_path, tokenizer, models):
    student, _ = models
    cfg, inputs = _setup(tmp_path, tokenizer)
    trainer = build_trainer(cfg, inputs, student, student, tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    assert abs(trainer.compute_loss(student, dict(batch)).item()) < 1e-6


def test_a_few_steps_lower_the_kl_on_the_training_batch(tmp_path, tokenizer, models):
    student, teacher = models
    cfg, inputs = _setup(tmp_path, tokenizer, max_steps=8, learning_rate=3e-3, lr_scheduler_type="constant")
    cfg.per_device_train_batch_size = 8  # the whole train split: every step sees the same batch
    trainer = build_trainer(cfg, inputs, student, teacher, tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    before = _direct_kl(student, teacher, batch)
    trainer.train()
    assert _direct_kl(student, teacher, batch) < 0.7 * before


def test_text_rows_make_up_the_fraction(tmp_path, tokenizer):
    path = tmp_path / "text.jsonl"
    path.write_text("".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(50)))
    sft = Dataset.from_list(_rows(7)).remove_columns("category")
    mixed = mix_text(sft, str(path), 0.3, seed=0)
    assert len(mixed) == 10 and sum(t is not None for t in mixed["text"]) == 3


def test_a_teacher_with_another_vocabulary_fails_at_plan_time(tmp_path, tiny):
    ckpt = save_checkpoint(*tiny, tmp_path / "student")
    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1)).save_pretrained(
        tmp_path / "teacher"
    )
    over = [*DISTILL, "model.kind=hf", f"model.path={ckpt}", f"stage.distill.teacher={tmp_path / 'teacher'}"]
    with pytest.raises(PosttrainError, match=r"^stage\.distill\.teacher: the teacher's vocabulary has 64"):
        build_plan(compose(over))
    same = [*DISTILL, "model.kind=hf", f"model.path={ckpt}", f"stage.distill.teacher={ckpt}"]
    plan = build_plan(compose(same))
    assert plan[1].refs == {"teacher": str(ckpt)}
    assert build_plan(compose(DISTILL))[1].refs == {"teacher": "sft"}  # same source: same vocabulary


def test_run_time_vocabulary_check_names_the_same_key(tmp_path, tiny):
    ckpt = save_checkpoint(*tiny, tmp_path / "student")
    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1)).save_pretrained(
        tmp_path / "teacher"
    )
    cfg = OmegaConf.structured(DistillStageConfig(teacher="t"))
    inputs = StageInputs(
        name="d",
        stage_dir=tmp_path / "d",
        checkpoint=str(ckpt),
        data_dir=tmp_path,
        checkpoints={"teacher": str(tmp_path / "teacher")},
    )
    with pytest.raises(PosttrainError, match=r"^stage\.d\.teacher: the teacher's vocabulary has 64"):
        run(cfg, inputs)


@pytest.mark.parametrize(
    ("over", "key"),
    [
        (["stage.distill.text_fraction=0.3"], "text_fraction"),
        (["stage.distill.text_fraction=1.0"], "text_fraction"),
        (["stage.distill.text_fraction=0.3", "stage.distill.text_path=/nonexistent.jsonl"], "text_path"),
        (["stage.distill.temperature=0"], "temperature"),
        (["stage.distill.loss=mse"], "loss"),
        (["stage.distill.teacher=nosuch/../x"], "teacher"),
        (["stage.distill.teacher=???"], "teacher"),
    ],
)
def test_bad_values_fail_at_plan_time_naming_the_key(over, key):
    from posttrain.pipeline.runner import plan_fingerprints

    with pytest.raises(PosttrainError, match=rf"^stage\.distill\.{key}: "):
        plan_fingerprints(build_plan(compose([*DISTILL, *over])), "i", "d")
