"""Logit distillation's pieces, shared by the ``distill`` stage (training) and the ``prune`` stage
(what pruning cost): the per-token forward KL, the SFT-style masked collator and the held-out loss.

Held-out loss: over the loss-masked next-token positions M of a set of rows (assistant tokens of chat
rows through the template's generation tags, every token but the first of a plain-text row), each row
cut at the same ``max_length`` and never packed::

    CE = (1/|M|) Σ_{t∈M} -log p_S(x_t | x<t),     KL = (1/|M|) Σ_{t∈M} KL(p_T(·|x<t) ‖ p_S(·|x<t))

So the ``final_eval_loss`` of a prune, a distill and a CE-control stage on the same split and
``max_length`` are the same quantity. (An sft stage's ``final_eval_loss`` is the Trainer's on packed
validation rows, close but not identical.)
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F


def forward_kl(student_logits, teacher_logits, labels, temperature: float = 1.0) -> torch.Tensor:
    """Per-position KL(softmax(t/τ) ‖ softmax(s/τ)) of the positions predicting a label != -100
    (logits[:, i] predict labels[:, i+1]); a 1-D tensor, one entry per masked token."""
    mask = labels[:, 1:] != -100
    s = F.log_softmax(student_logits[:, :-1][mask].float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits[:, :-1][mask].float() / temperature, dim=-1)
    return (t.exp() * (t - s)).sum(-1)


def token_ce(logits, labels) -> torch.Tensor:
    """Summed next-token cross-entropy over the positions predicting a label != -100."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), reduction="sum")


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


def batches(tok, rows, *, max_length: int, batch_size: int) -> list[dict[str, torch.Tensor]]:
    """``rows`` (dicts with ``messages``/``tools`` or ``text``) collated in order, ``batch_size`` a batch."""
    rows = list(rows)
    collate = DistillCollator(tok, max_length)
    return [collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]


@torch.no_grad()
def heldout(model, batches, teacher=None) -> dict[str, float]:
    """Token-mean student cross-entropy (``ce``), plus the forward KL to ``teacher`` (``kl``) when one
    is given, over the masked tokens of ``batches``; ``tokens`` is |M|. The model's train/eval mode
    is restored."""
    kl = ce = n = 0.0
    was_training = model.training
    model.eval()
    for b in batches:
        b = {k: v.to(model.device) for k, v in b.items()}
        s = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        if teacher is not None:
            t = teacher(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            kl += forward_kl(s, t, b["labels"]).sum().item()
        ce += token_ce(s, b["labels"]).item()
        n += (b["labels"][:, 1:] != -100).sum().item()
    model.train(was_training)
    out = {"ce": ce / max(n, 1), "tokens": int(n)}
    return out | ({"kl": kl / max(n, 1)} if teacher is not None else {})
