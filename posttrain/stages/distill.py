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

``loss: ce`` trains the same student on the same batches with plain next-token cross-entropy instead
(the teacher then only scores the eval KL): the control of Minitron's claim that distillation recovers
a pruned model better than fine-tuning does.

Metrics: the trainer's; ``initial_eval_kl`` / ``final_eval_kl`` and ``initial_eval_loss`` /
``final_eval_loss`` on the sft validation split before and after training (``compress.kd.heldout``:
token-mean KL to the teacher and student cross-entropy on the assistant tokens, rows cut at
``max_length``; the quantity a prune stage's ``final_eval_loss`` is), and ``eval_tokens``.
"""

from __future__ import annotations

import torch
from datasets import Dataset, Value, concatenate_datasets, load_dataset
from trl.experimental.gkd import GKDConfig, GKDTrainer

from posttrain import PosttrainError
from posttrain.compress import kd
from posttrain.compress.kd import DistillCollator, token_ce
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


class ForwardKLTrainer(GKDTrainer):
    """``GKDTrainer`` whose loss uses the stage's τ (GKD's own ``temperature`` is for sampling), or,
    with ``distill_loss = "ce"``, plain next-token cross-entropy on the same masked tokens with the
    same normalisation and no teacher forward: the control that isolates what the teacher adds."""

    distill_temperature: float = 1.0
    distill_loss: str = "kl"

    def generalized_jsd_loss(self, *args, **kwargs):
        return GKDTrainer.generalized_jsd_loss(*args, **kwargs, temperature=self.distill_temperature)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.distill_loss == "kl":
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        labels = inputs["labels"]
        n = (
            num_items_in_batch
            if num_items_in_batch is not None
            else (labels[:, 1:] != -100).sum().clamp_min(1)
        )
        loss = token_ce(out.logits, labels) / (n.to(out.logits.device) if torch.is_tensor(n) else n)
        return (loss, out) if return_outputs else loss


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
    trainer.distill_temperature, trainer.distill_loss = cfg.temperature, cfg.loss
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
    # every rank scores the whole split (the trainer's eval loader would shard it under DDP)
    held = kd.batches(
        tok, trainer.eval_dataset, max_length=cfg.max_length, batch_size=cfg.per_device_train_batch_size
    )
    before = kd.heldout(trainer.model, held, trainer.teacher_model)
    metrics = train_and_save(trainer, tok, inputs)
    after = kd.heldout(trainer.model, held, trainer.teacher_model)
    metrics.update(initial_eval_kl=before["kl"], final_eval_kl=after["kl"], final_eval_loss=after["ce"])
    metrics.update(initial_eval_loss=before["ce"], eval_tokens=after["tokens"])
    metrics["train_samples"] = len(trainer.train_dataset)
    return StageOutputs(checkpoint=str(inputs.checkpoint_dir), metrics=metrics)
