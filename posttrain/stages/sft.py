"""SFT stage: TRL ``SFTTrainer`` on the recipe's ``sft`` view (mixed reasoning ON/OFF, with
truncated-thinking samples), assistant-only loss through the chat template's generation tags.

Packing: ``bfd`` is TRL's padding-free packing: whole samples packed best-fit into rows
of ``max_length``, each sample's attention, conv window and Mamba state starting fresh (on the torch
path through ``posttrain.models.packing``; with mamba-ssm kernels natively). A sample longer than
``max_length`` is cut there, as TRL's ``bfd`` does; the stage counts such samples
(``train_samples_at_max_length``). ``wrapped`` (concatenate and cut, state flowing across samples)
stays as an explicit opt-in and warns.
Nano 2's three SFT stages map to three ``sft`` stages: full mix packed; ``categories:
[tool_calling]`` unpacked; ``only_truncated: true`` (plus long context at full scale).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from trl import SFTConfig
from trl import SFTTrainer as TRLSFTTrainer

from posttrain.models import packing
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

log = logging.getLogger(__name__)


def packing_strategy(requested: str) -> str:
    """``auto`` -> ``bfd``: whole samples, padding-free, with the mamba-ssm kernels or, without them,
    exact through ``posttrain.models.packing``. An explicit ``wrapped`` warns."""
    if requested == "wrapped":
        log.warning(
            "stage sft: packing_strategy=wrapped concatenates samples and cuts at max_length, so attention "
            "and Mamba state run across sample boundaries; bfd keeps samples apart"
        )
        return requested
    if requested == "auto":
        return "bfd"
    return requested


def packing_counts(train, max_length: int) -> dict[str, int]:
    """Samples and tokens in TRL's packed ``bfd`` dataset, and how many samples were cut at ``max_length``."""
    if "seq_lengths" not in train.column_names:
        return {}
    lengths = [n for row in train["seq_lengths"] for n in row]
    return {
        "train_packed_rows": len(train),
        "train_packed_samples": len(lengths),
        "train_packed_tokens": sum(lengths),
        "train_samples_at_max_length": sum(n >= max_length for n in lengths),
    }


class SFTTrainer(TRLSFTTrainer):
    """TRL's ``SFTTrainer``; with ``labelled_head`` the loss projects only the hidden states that have
    a label onto the vocabulary (``logits_to_keep`` as a boolean mask) instead of TRL's chunked fused
    head over every position. Same loss, ``sum CE / num_items_in_batch``; ``entropy`` and
    ``mean_token_accuracy`` are logged over the same labelled positions as TRL's. Measured on the tiny
    model on CPU (a packed row of ~2k tokens, half of them labelled): forward + backward 1.11 s with
    TRL's head, 0.75 s with the model's full-logit loss. Falls back to TRL for anything else it
    handles (label smoothing, DFT, MoE aux loss, sequence parallelism, a custom loss).
    """

    def __init__(self, *args, labelled_head: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.labelled_head = labelled_head

    def _labelled_head_applies(self) -> bool:
        pc = getattr(self.accelerator, "parallelism_config", None)
        return (
            self.labelled_head
            and self.args.loss_type == "nll"
            and self.label_smoother is None
            and self.compute_loss_func is None
            and not self.aux_loss_enabled
            and not (pc is not None and getattr(pc, "sp_enabled", False))
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self._labelled_head_applies():
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        targets = F.pad(labels[:, 1:], (0, 1), value=-100)  # position t predicts token t + 1
        keep = targets != -100
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**model_inputs, use_cache=False, logits_to_keep=keep)
        logits, y = outputs.logits.float(), targets[keep]  # (n_labelled, vocab)
        n = keep.sum() if num_items_in_batch is None else num_items_in_batch
        loss = F.cross_entropy(logits, y, reduction="sum") / torch.as_tensor(n).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        with torch.no_grad():
            logp = logits.log_softmax(-1)
            gather = self.accelerator.gather_for_metrics
            n_valid = gather(keep.sum()).sum()
            entropy = gather(-(logp.exp() * logp).sum(-1).sum()).sum()
            correct = gather((logits.argmax(-1) == y).sum()).sum()
        valid = n_valid.item()
        self._metrics[mode]["entropy"].append((entropy / n_valid).item() if valid else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((correct / n_valid).item() if valid else 0.0)
        if mode == "train":  # as TRL counts: every position of a padding-free row, else the attention mask
            if "attention_mask" in inputs:
                tokens = inputs["attention_mask"].sum()
            else:
                tokens = torch.tensor(inputs["position_ids"].size(1), device=labels.device)
            self._total_train_tokens += gather(tokens).sum().item() // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss


def loss_head(requested: str) -> str:
    """``auto`` -> ``labelled`` on CPU, ``trl`` on GPU (where TRL's chunked head saves memory)."""
    if requested != "auto":
        return requested
    return "trl" if torch.cuda.is_available() else "labelled"


def build_datasets(cfg, inputs: StageInputs):
    keep = ("messages", "tools")
    train = load_view(inputs, "sft", "train", categories=cfg.categories)
    if cfg.only_truncated:
        train = train.filter(lambda t: bool(t), input_columns="truncated")
    train = train.remove_columns([c for c in train.column_names if c not in keep])
    val = load_view(inputs, "sft", "validation", categories=cfg.categories, keep=keep)
    return train, val


def run(cfg, inputs: StageInputs) -> StageOutputs:
    model, tok = load_policy(inputs)
    train, val = build_datasets(cfg, inputs)
    args = common_trainer_args(cfg, inputs)
    strategy, head = packing_strategy(cfg.packing_strategy), loss_head(cfg.loss_head)
    if cfg.packing and strategy == "bfd":
        packing.install()  # NemotronH's torch path: reset Mamba state at sample boundaries
        packing.use_varlen_attention(model)  # sdpa per sample, not over the whole packed row
    args.update(
        max_length=cfg.max_length,
        packing=cfg.packing,
        packing_strategy=strategy,
        assistant_only_loss=cfg.assistant_only_loss,
        eval_strategy="steps" if cfg.eval_steps else "no",
        eval_steps=cfg.eval_steps or None,
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
    )
    trainer = SFTTrainer(
        model=model,
        args=make_config(SFTConfig, args, inputs.name),
        train_dataset=train,
        eval_dataset=val,
        processing_class=tok,
        peft_config=peft_config(cfg),
        callbacks=inputs.callbacks,
        labelled_head=head == "labelled",
    )
    metrics = train_and_save(trainer, tok, inputs)
    metrics.update({f"final_{k}": v for k, v in trainer.evaluate().items() if isinstance(v, (int, float))})
    metrics["train_samples"] = len(train)
    metrics["loss_head"] = "labelled" if trainer._labelled_head_applies() else "trl"
    metrics.update(packing_counts(trainer.train_dataset, cfg.max_length) if cfg.packing else {})
    return StageOutputs(checkpoint=str(inputs.checkpoint_dir), metrics=metrics)
