"""Minitron activation importance (arXiv 2407.14679, 2408.11796; Nemotron-H 2504.11409), from forward
hooks on calibration batches, and Nano 2's depth scores (2508.14444).

Width. For an activation ``a[b, t, j]`` and the attention mask ``m[b, t]`` (padding excluded), channel j
scores ``sqrt(sum_b (sum_t m |a| / sum_t m)^2)``: mean over the sequence, L2 over the batch, summed
over batches (so the order of the batches does not matter). As in ModelOpt's Minitron, the mean is of
``|a|``. Where each axis is measured:

- hidden: the output of every hidden-size RMSNorm (the blocks' and the final one), each norm's score
  computed as above and the scores summed over norms;
- FFN neurons: the input of ``down_proj``;
- Mamba heads: the ``x`` slice of ``in_proj``'s output ([z, x, B, C, dt]); a head scores the L2 norm
  of its ``head_dim`` channel scores (ranked within its group at selection, ``prune.select``);
- attention query heads: the L2 norm of each head's write into the residual stream,
  ``||W_o[:, h] a_h||`` per token (Gram form ``a_h^T W_h^T W_h a_h``), mean over the sequence, L2
  over the batch. A departure: Minitron and ModelOpt score ``||a_h||``, the ``o_proj`` input. Under GQA
  the heads of a KV group read the same values, so a head whose ``o_proj`` columns are zero would still
  score high on its input; its output is what removing it takes away.

Depth, one score per layer (higher keeps): ``block`` = 1 - cos(layer input, layer output), averaged
over tokens (Minitron's block importance); ``logit_mse`` = the mean squared difference of the logits
when that layer alone is skipped (its output replaced by its input), Nano 2's choice, at one extra
forward per layer and batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from posttrain.compress.layout import layout


@dataclass
class Importance:
    hidden: torch.Tensor  # [hidden_size]
    block: torch.Tensor  # [layers], 1 - cos
    ffn: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [intermediate_size]
    mamba: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [mamba_num_heads]
    attention: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [num_attention_heads]
    logit_mse: torch.Tensor | None = None  # [layers]
    tokens: int = 0

    def depth(self, method: str) -> torch.Tensor:
        if method == "logit_mse":
            if self.logit_mse is None:
                raise ValueError("logit_mse scores were not computed (importance(..., logit_mse=True))")
            return self.logit_mse
        return self.block

    def to_json(self) -> dict[str, Any]:
        def per_layer(d):
            return {str(k): v.tolist() for k, v in d.items()}

        out = {"tokens": self.tokens, "hidden": self.hidden.tolist(), "block": self.block.tolist()}
        out |= {
            "ffn": per_layer(self.ffn),
            "mamba": per_layer(self.mamba),
            "attention": per_layer(self.attention),
        }
        return out | {"logit_mse": None if self.logit_mse is None else self.logit_mse.tolist()}


class _L2:
    """Accumulates ``sum_b (masked mean over t of a[b, t, :])^2``; ``a`` is already non-negative."""

    def __init__(self):
        self.sq: torch.Tensor | None = None

    def add(self, a: torch.Tensor, m: torch.Tensor) -> None:
        mean = (a.float() * m[..., None]).sum(1) / m.sum(1).clamp(min=1)[:, None]
        sq = mean.pow(2).sum(0)
        self.sq = sq if self.sq is None else self.sq + sq

    def score(self) -> torch.Tensor:
        return self.sq.sqrt()


def _first(args, kwargs) -> torch.Tensor:
    """A module's first input, passed positionally or by keyword (``hidden_states`` / ``input``)."""
    return args[0] if args else kwargs["hidden_states" if "hidden_states" in kwargs else "input"]


def _out(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _head_out_norm(a: torch.Tensor, o_weight: torch.Tensor, heads: int) -> torch.Tensor:
    """``||W_o[:, h] a_h||`` for every token and head: ``a`` [b, t, heads*hd] -> [b, t, heads]."""
    hd = a.shape[-1] // heads
    w = o_weight.float().view(o_weight.shape[0], heads, hd)
    gram = torch.einsum("ohd,ohe->hde", w, w)
    x = a.float().view(*a.shape[:-1], heads, hd)
    return torch.einsum("bthd,hde,bthe->bth", x, gram, x).clamp(min=0).sqrt()


@torch.no_grad()
def importance(model, batches: Iterable[dict[str, torch.Tensor]], *, logit_mse: bool = False) -> Importance:
    """Width and depth scores of ``model`` over ``batches`` of ``input_ids`` / ``attention_mask``
    (right padding; padded positions are excluded everywhere)."""
    lay, cfg = layout(model), model.config
    dev = next(model.parameters()).device
    state: dict[str, Any] = {"on": False}
    hidden = {id(p.norm): _L2() for p in lay.parts} | {id(lay.final_norm): _L2()}
    ffn, mamba, attn = {}, {}, {}
    block = torch.zeros(len(lay.layers), dtype=torch.float64)
    hooks = []

    def add(mod, fn):
        def guarded(mod, args, kwargs, out):
            if state["on"]:
                fn(mod, _first(args, kwargs), out)

        hooks.append(mod.register_forward_hook(guarded, with_kwargs=True))

    for norm in [*{id(p.norm): p.norm for p in lay.parts}.values(), lay.final_norm]:
        add(norm, lambda mod, x, out: hidden[id(mod)].add(out.abs(), state["m"]))
    d = getattr(cfg, "mamba_num_heads", 0) * getattr(cfg, "mamba_head_dim", 0)
    for p in lay.parts:
        if p.kind == "-":
            ffn[p.layer] = acc = _L2()
            add(p.mixer.down_proj, lambda mod, x, out, acc=acc: acc.add(x.abs(), state["m"]))
        elif p.kind == "M":
            mamba[p.layer] = acc = _L2()
            add(p.mixer.in_proj, lambda mod, x, out, acc=acc: acc.add(out[..., d : 2 * d].abs(), state["m"]))
        else:
            attn[p.layer] = acc = _L2()
            add(
                p.mixer.o_proj,
                lambda mod, x, out, acc=acc: acc.add(
                    _head_out_norm(x, mod.weight, cfg.num_attention_heads), state["m"]
                ),
            )

    def block_hook(mod, x, out):
        cos = torch.nn.functional.cosine_similarity(x.float(), _out(out).float(), dim=-1)
        block[state["layer"][id(mod)]] += ((1 - cos) * state["m"]).sum().item()

    state["layer"] = {id(layer): i for i, layer in enumerate(lay.layers)}
    for layer in lay.layers:
        add(layer, block_hook)
    tokens, mse = 0, torch.zeros(len(lay.layers), dtype=torch.float64)
    was_training = model.training
    model.eval()
    try:
        for b in batches:
            b = {k: b[k].to(dev) for k in ("input_ids", "attention_mask")}
            state["m"] = b["attention_mask"].float()
            tokens += int(state["m"].sum())
            state["on"] = True
            full = _logits(model, b)
            state["on"] = False  # the skipped-layer passes must not count as calibration
            if logit_mse:
                mse += _skip_mse(model, lay.layers, b, full, state["m"])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    n = max(tokens, 1)
    return Importance(
        hidden=sum(acc.score() for acc in hidden.values()).cpu(),
        block=(block / n).float(),
        ffn={k: v.score().cpu() for k, v in ffn.items()},
        mamba={k: _heads(v.score(), cfg.mamba_num_heads).cpu() for k, v in mamba.items()},
        attention={k: v.score().cpu() for k, v in attn.items()},
        logit_mse=(mse / n).float() if logit_mse else None,
        tokens=tokens,
    )


def _heads(channels: torch.Tensor, heads: int) -> torch.Tensor:
    return torch.linalg.vector_norm(channels.view(heads, -1), dim=1)


def _logits(model, b: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False).logits.float()


def _skip_mse(model, layers, b, full: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Per layer: sum over valid tokens of mean_v (logits without that layer - full logits)^2."""
    out = torch.zeros(len(layers), dtype=torch.float64)
    for i, layer in enumerate(layers):
        h = layer.register_forward_hook(lambda mod, a, kw, o: _first(a, kw), with_kwargs=True)
        try:
            logits = _logits(model, b)
        finally:
            h.remove()
        out[i] = ((logits - full).pow(2).mean(-1) * m).sum().item()
    return out
