"""Distill stage: forward-KL logit distillation from ``teacher`` into the input model (Nano 2 §4).

Loss of a batch, over its loss-masked next-token positions M (assistant tokens of the SFT rows, as the
template's generation tags mark them; every token but the first of a plain-text row)::

    L = (1/|M|) Σ_{t∈M} KL(p_T(·|x<t) ‖ p_S(·|x<t)),   p = softmax(z / τ),   τ = 1 (Nano 2)

with no τ² factor. The teacher runs in eval mode under ``no_grad``, in the stage's dtype.

Trainer: TRL's ``GKDTrainer`` with ``lmbda=0`` (never on-policy), ``seq_kd`` off and ``beta=0``, whose
``generalized_jsd_loss`` is then ``F.kl_div(log p_S, log p_T, log_target=True)`` = KL(T‖S). Two things
are ours: GKD's ``temperature`` only drives sampling, so ``ForwardKLTrainer`` hands τ to the loss; and
the collator, since GKD's ``DataCollatorForChatML`` trains on the last message only (prompt = all the
others) and has no plain-text rows, where ours (``DistillCollator``) masks like SFT does.

Data: the recipe's ``sft`` view, plus plain-text rows (``text_path``, a .jsonl of ``{text}``) making up
``text_fraction`` of the rows, not of the tokens. Nano 2 used 30 % pretraining data; posttrain ships no
pretraining corpus, so the default is 0 (SFT data only).

Metrics: the trainer's, ``initial_eval_kl`` and ``final_eval_kl`` (the loss on the sft validation
split before and after), and ``final_eval_loss``: the student's token-mean cross-entropy on the same
assistant tokens, comparable to an sft stage's ``final_eval_loss``.
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from datasets import Dataset, Value, concatenate_datasets, load_dataset
from trl.experimental.gkd import GKDConfig, GKDTrainer

from posttrain import PosttrainError
from posttrain.compress.targets import vocab_error
from posttrain.models import load_model
from posttrain.stages.base import (
    StageInputs,
    StageOutputs,
    common_trainer_args,
    load_policy,
    load_view,
    make_config,
    peft_config,
    train_and_save,
)


def forward_kl(student_logits, teacher_logits, labels, temperature: float = 1.0) -> torch.Tensor:
    """Per-position KL(softmax(t/τ) ‖ softmax(s/τ)) of the positions predicting a label != -100
    (logits[:, i] predict labels[:, i+1]); a 1-D tensor, one entry per masked token."""
    mask = labels[:, 1:] != -100
    s = F.log_softmax(student_logits[:, :-1][mask].float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits[:, :-1][mask].float() / temperature, dim=-1)
    return (t.exp() * (t - s)).sum(-1)


def encode(tok, row: dict, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and loss mask of one row: a plain-text row's every token but the first, a chat
    row's assistant tokens (``{% generation %}`` tags), both cut at ``max_length``."""
    if row.get("text") is not None:
        ids = tok(row["text"], add_special_tokens=False)["input_ids"][:max_length]
        return ids, [0] + [1] * (len(ids) - 1)
    tools = json.loads(row["tools"]) if row.get("tools") else None
    out = tok.apply_chat_template(
        row["messages"], tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return out["input_ids"][:max_length], out["assistant_masks"][:max_length]


class DistillCollator:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 outside the loss mask)."""

    def __init__(self, tok, max_length: int):
        self.tok, self.max_length = tok, max_length

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        enc = [encode(self.tok, r, self.max_length) for r in rows]
        n = max(len(ids) for ids, _ in enc)
        ids = torch.full((len(enc), n), self.tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(enc), n), dtype=torch.long)
        labels = torch.full((len(enc), n), -100, dtype=torch.long)
        for i, (x, m) in enumerate(enc):
            x_t = torch.tensor(x, dtype=torch.long)
            ids[i, : len(x)], attn[i, : len(x)] = x_t, 1
            labels[i, : len(x)] = torch.where(torch.tensor(m, dtype=torch.bool), x_t, -100)
        return {"input_ids": ids, "attention_mask": attn, "labels": labels}


class ForwardKLTrainer(GKDTrainer):
    """``GKDTrainer`` whose loss uses the stage's τ (GKD's own ``temperature`` is for sampling)."""

    distill_temperature: float = 1.0

    def generalized_jsd_loss(self, *args, **kwargs):
        return GKDTrainer.generalized_jsd_loss(*args, **kwargs, temperature=self.distill_temperature)


def mix_text(sft: Dataset, text_path: str | None, fraction: float, seed: int) -> Dataset:
    """``sft`` rows plus plain-text rows, ``fraction`` of the total, shuffled; a ``text`` column is
    None on chat rows, ``messages``/``tools`` are None on text rows."""
    features = sft.features.copy()
    features["text"] = Value("string")
    sft = sft.map(lambda _: {"text": None}, features=features)
    if fraction <= 0:
        return sft
    rows = load_dataset("json", data_files=text_path, split="train").shuffle(seed=seed)
    n = min(len(rows), round(len(sft) * fraction / (1 - fraction)))
    if n == 0 or "text" not in rows.column_names:
        raise PosttrainError(f"text_path: {text_path} has no rows with a `text` field")
    texts = rows.select(range(n))["text"]
    text = Dataset.from_dict({"messages": [None] * n, "tools": [None] * n, "text": texts}, features=features)
    return concatenate_datasets([sft, text]).shuffle(seed=seed)


@torch.no_grad()
def evaluate(model, teacher, batches) -> dict[str, float]:
    """Token-mean forward KL and student cross-entropy over the masked tokens of ``batches``."""
    kl = ce = n = 0.0
    was_training = model.training
    model.eval()
    for b in batches:
        b = {k: v.to(model.device) for k, v in b.items()}
        s = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        t = teacher(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        kl += forward_kl(s, t, b["labels"]).sum().item()
        labels = b["labels"][:, 1:].flatten()
        ce += F.cross_entropy(s[:, :-1].flatten(0, 1).float(), labels, reduction="sum").item()
        n += (labels != -100).sum().item()
    model.train(was_training)
    return {"kl": kl / max(n, 1), "ce": ce / max(n, 1)}


def build_trainer(cfg, inputs: StageInputs, model, teacher, tok) -> ForwardKLTrainer:
    """The trainer on the mixed train rows, the sft validation split held out."""
    keep = ("messages", "tools")
    train = load_view(inputs, "sft", "train", categories=cfg.categories, keep=keep)
    train = mix_text(train, cfg.text_path, cfg.text_fraction, inputs.seed)
    val = mix_text(load_view(inputs, "sft", "validation", categories=cfg.categories, keep=keep), None, 0, 0)
    args = common_trainer_args(cfg, inputs)
    args.update(max_length=cfg.max_length, lmbda=0.0, beta=0.0, seq_kd=False, remove_unused_columns=False)
    args.update(per_device_eval_batch_size=cfg.per_device_train_batch_size)
    trainer = ForwardKLTrainer(
        model=model,
        teacher_model=teacher,
        args=make_config(GKDConfig, args, inputs.name),
        data_collator=DistillCollator(tok, cfg.max_length),
        train_dataset=train,
        eval_dataset=val,
        processing_class=tok,
        peft_config=peft_config(cfg),
        callbacks=inputs.callbacks,
    )
    trainer.distill_temperature = cfg.temperature
    return trainer


def run(cfg, inputs: StageInputs) -> StageOutputs:
    model, tok = load_policy(inputs)
    teacher = load_model(
        inputs.checkpoints["teacher"],
        dtype=inputs.dtype,
        trust_remote_code=inputs.trust_remote_code,
        what=f"stage.{inputs.name}.teacher",
    ).eval()
    teacher.requires_grad_(False)
    t, s = teacher.config.get_text_config().vocab_size, model.config.get_text_config().vocab_size
    if why := vocab_error(inputs.name, t, s):  # as the plan did, when it could
        raise PosttrainError(why)
    trainer = build_trainer(cfg, inputs, model, teacher, tok)
    before = evaluate(trainer.model, trainer.teacher_model, trainer.get_eval_dataloader())
    metrics = train_and_save(trainer, tok, inputs)
    after = evaluate(trainer.model, trainer.teacher_model, trainer.get_eval_dataloader())
    metrics.update(initial_eval_kl=before["kl"], final_eval_kl=after["kl"], final_eval_loss=after["ce"])
    metrics["train_samples"] = len(trainer.train_dataset)
    return StageOutputs(checkpoint=str(inputs.checkpoint_dir), metrics=metrics)
