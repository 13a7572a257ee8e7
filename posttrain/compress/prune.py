"""Minitron-style structured pruning of HF NemotronH and Llama models: keep the top-k by importance on
each axis (``importance.py``), slice every tensor that axis runs through, and build a smaller model of
the same class whose config names the new sizes.

Selection (``select``): depth drops the ``drop_layers`` given, or the lowest-scoring layers down to
``num_layers``; hidden channels are ranked once for the whole model, FFN neurons per layer; Mamba heads
per layer *within their group*, the same count per group, so head h of group h // (heads/g) still reads
that group's B and C; attention query heads evenly within each KV group. Kept indices stay in their
original order (ties: the lower index).

Slicing, for kept hidden channels c, Mamba heads k (channels e = k x head_dim), query heads q (channels
e_q), neurons f:

- embedding and lm_head columns c; every hidden RMSNorm weight c; every input projection's columns c
  and every output projection's rows c (Mamba ``in_proj`` / ``out_proj``, ``q/k/v/o_proj``, ``up``,
  ``gate``, ``down``);
- Mamba ``in_proj`` rows [z e | x e | B, C all | dt k] (layout [z, x, B, C, dt]); ``conv1d`` channels
  [x e | B, C all]; ``dt_bias``, ``A_log``, ``D`` k; the gated norm weight e (its group size becomes
  kept heads per group x head_dim, the kept heads of the same group); ``out_proj`` columns e;
- attention ``q_proj`` rows e_q, ``o_proj`` columns e_q (K and V stay); MLP ``up``/``gate`` rows f,
  ``down`` columns f.

Norm rescaling (``rescale_norms``, a departure: ModelOpt only slices). An RMSNorm over n channels
divides by sqrt(sum x^2 / n + eps). Removing channels whose input is zero keeps the sum but shrinks n,
so each sliced norm weight is multiplied by sqrt(n / n'): sqrt(H / H') for the hidden norms, sqrt(d /
d') for the Mamba gated norm (d / d' is the same in every group). Pruning exactly-zero channels then
changes nothing but eps's share, eps (1 - n'/n) against the mean square. Where the mean square is far
below eps (a random tiny model's Mamba gated norm: ~1e-10 against 1e-5) the norm is nearly linear and
plain slicing is the closer of the two: turn it off there.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from posttrain.compress.importance import Importance
from posttrain.compress.layout import layout
from posttrain.compress.targets import WIDTHS, Targets, raise_first, sizes_of, target_errors

Index = torch.Tensor | None  # kept indices along a dim; None keeps all


def keep_top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores, in ascending index order (ties keep the lower index)."""
    order = torch.argsort(scores.double(), descending=True, stable=True)
    return order[:k].sort().values


def keep_grouped(scores: torch.Tensor, k: int, groups: int) -> torch.Tensor:
    """k indices, k / groups from each contiguous group, each group's top scores."""
    size = scores.numel() // groups
    per = [keep_top(g, k // groups) + i * size for i, g in enumerate(scores.view(groups, size))]
    return torch.cat(per)


@dataclass
class Selection:
    layers: list[int]  # kept layers, original numbering
    hidden: Index = None
    ffn: dict[int, torch.Tensor] = field(default_factory=dict)
    mamba: dict[int, torch.Tensor] = field(default_factory=dict)  # kept head indices
    attention: dict[int, torch.Tensor] = field(default_factory=dict)  # kept query head indices
    widths: dict[str, int] = field(default_factory=dict)  # the new config sizes


def select(model, targets: Targets, imp: Importance, *, depth: str = "block") -> Selection:
    """What to keep, from the scores; raises ``PosttrainError`` (key ``prune.<target>``) on a bad target."""
    cfg = model.config
    raise_first(target_errors(targets, sizes_of(cfg)), "prune")
    n = len(layout(model).layers)
    if targets.drop_layers:
        layers = [i for i in range(n) if i not in set(targets.drop_layers)]
    elif targets.num_layers is not None:
        layers = keep_top(imp.depth(depth), targets.num_layers).tolist()
    else:
        layers = list(range(n))
    sel = Selection(
        layers, widths={k: getattr(targets, k) for k in WIDTHS if getattr(targets, k) is not None}
    )
    if targets.hidden_size is not None:
        sel.hidden = keep_top(imp.hidden, targets.hidden_size)
    if targets.intermediate_size is not None:
        sel.ffn = {i: keep_top(s, targets.intermediate_size) for i, s in imp.ffn.items() if i in layers}
    if targets.mamba_num_heads is not None:
        sel.mamba = {
            i: keep_grouped(s, targets.mamba_num_heads, cfg.n_groups)
            for i, s in imp.mamba.items()
            if i in layers
        }
    if targets.num_attention_heads is not None:
        kv = cfg.num_key_value_heads
        sel.attention = {
            i: keep_grouped(s, targets.num_attention_heads, kv)
            for i, s in imp.attention.items()
            if i in layers
        }
    return sel


def _channels(heads: torch.Tensor, dim: int) -> torch.Tensor:
    return (heads[:, None] * dim + torch.arange(dim)).flatten()


@dataclass
class _Rule:
    rows: Index = None
    cols: Index = None
    scale: float = 1.0


def _rules(model, sel: Selection, rescale: bool) -> dict[str, _Rule]:
    """Old state-dict key -> how to slice it (keys not listed are copied)."""
    cfg, lay, c = model.config, layout(model), sel.hidden
    h_scale = math.sqrt(cfg.hidden_size / len(c)) if rescale and c is not None else 1.0
    rules = {lay.embed_key: _Rule(cols=c), "lm_head.weight": _Rule(cols=c)}
    rules[lay.final_norm_key] = _Rule(rows=c, scale=h_scale)
    for p in lay.parts:
        rules[p.norm_key] = _Rule(rows=c, scale=h_scale)
        pre = p.prefix
        if p.kind == "-":
            f = sel.ffn.get(p.layer)
            for name in ("up_proj", "gate_proj"):
                rules[f"{pre}{name}.weight"], rules[f"{pre}{name}.bias"] = _Rule(f, c), _Rule(f)
            rules[f"{pre}down_proj.weight"], rules[f"{pre}down_proj.bias"] = _Rule(c, f), _Rule(c)
        elif p.kind == "*":
            q = sel.attention.get(p.layer)
            e = None if q is None else _channels(q, p.mixer.head_dim)
            rules[f"{pre}q_proj.weight"], rules[f"{pre}q_proj.bias"] = _Rule(e, c), _Rule(e)
            for name in ("k_proj", "v_proj"):
                rules[f"{pre}{name}.weight"] = _Rule(cols=c)
            rules[f"{pre}o_proj.weight"], rules[f"{pre}o_proj.bias"] = _Rule(c, e), _Rule(c)
        else:
            rules |= _mamba_rules(cfg, pre, sel.mamba.get(p.layer), c, rescale)
    return rules


def _mamba_rules(cfg, pre: str, k: Index, c: Index, rescale: bool) -> dict[str, _Rule]:
    nh, hd = cfg.mamba_num_heads, cfg.mamba_head_dim
    d, bc = nh * hd, 2 * cfg.n_groups * cfg.ssm_state_size
    if k is None:
        e = proj = conv = heads = None
        scale = 1.0
    else:
        e, heads = _channels(k, hd), k
        proj = torch.cat([e, d + e, 2 * d + torch.arange(bc), 2 * d + bc + k])  # z, x, B C, dt
        conv = torch.cat([e, d + torch.arange(bc)])  # x, B C
        scale = math.sqrt(nh / len(k)) if rescale else 1.0
    rules = {f"{pre}in_proj.weight": _Rule(proj, c), f"{pre}in_proj.bias": _Rule(proj)}
    rules |= {f"{pre}conv1d.weight": _Rule(conv), f"{pre}conv1d.bias": _Rule(conv)}
    rules |= {f"{pre}{name}": _Rule(heads) for name in ("dt_bias", "A_log", "D")}
    rules[f"{pre}norm.weight"] = _Rule(e, scale=scale)
    rules |= {f"{pre}out_proj.weight": _Rule(c, e), f"{pre}out_proj.bias": _Rule(c)}
    return rules


def _apply(t: torch.Tensor, r: _Rule) -> torch.Tensor:
    if r.rows is not None:
        t = t.index_select(0, r.rows.to(t.device))
    if r.cols is not None:
        t = t.index_select(1, r.cols.to(t.device))
    return t * r.scale if r.scale != 1.0 else t  # load_state_dict copies it into the new model


def new_config(model, sel: Selection) -> Any:
    cfg = copy.deepcopy(model.config)
    old = model.config
    if layout(model).family == "llama":
        cfg.num_hidden_layers = len(sel.layers)
        cfg.head_dim = old.head_dim  # explicit, so a narrower hidden size keeps the head size
    else:
        cfg.layers_block_type = [old.layers_block_type[i] for i in sel.layers]
    for key, value in sel.widths.items():
        setattr(cfg, key, value)
    return cfg


def kept_sizes(config) -> dict[str, Any]:
    """The sizes a pruned model keeps (those its layers use), as the manifest records them."""
    s = sizes_of(config)
    out = {"num_layers": s.layers, "hidden_size": s.hidden_size}
    if getattr(config, "model_type", "") == "nemotron_h":
        out["hybrid_override_pattern"] = config.hybrid_override_pattern
    keys = ("intermediate_size", "mamba_num_heads", "num_attention_heads", "num_key_value_heads")
    return out | {k: getattr(s, k) for k in keys if getattr(s, k)}


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def apply_selection(model, sel: Selection, *, rescale_norms: bool = True):
    """A new model of ``type(model)`` holding the kept slices (loaded strictly)."""
    from transformers.initialization import no_init_weights

    rules = _rules(model, sel, rescale_norms)
    renumber = {f"model.layers.{new}.": f"model.layers.{old}." for new, old in enumerate(sel.layers)}
    old_sd = model.state_dict()
    param = next(model.parameters())
    with no_init_weights():
        new = type(model)(new_config(model, sel))
    new.to(dtype=param.dtype, device=param.device)
    sd = {}
    for key in new.state_dict():
        src = key
        if key.startswith("model.layers."):
            head = ".".join(key.split(".")[:3]) + "."
            src = renumber[head] + key[len(head) :]
        sd[key] = _apply(old_sd[src], rules.get(src, _Rule()))
    new.load_state_dict(sd, strict=True)
    if getattr(model, "generation_config", None) is not None:
        new.generation_config = copy.deepcopy(model.generation_config)
    return new.train(model.training)


def prune(model, targets: Targets, imp: Importance, *, depth: str = "block", rescale_norms: bool = True):
    """``(pruned model, report)``; the report has ``params_before``, ``params_after``, ``removed_layers``
    (original numbering) and ``kept`` (the new sizes)."""
    sel = select(model, targets, imp, depth=depth)
    new = apply_selection(model, sel, rescale_norms=rescale_norms)
    removed = [i for i in range(len(layout(model).layers)) if i not in set(sel.layers)]
    report = {
        "params_before": numel(model),
        "params_after": numel(new),
        "removed_layers": removed,
        "kept": kept_sizes(new.config),
    }
    return new, report
