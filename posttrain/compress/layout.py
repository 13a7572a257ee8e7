"""Where pruning looks inside HF NemotronH and Llama-style models: one ``Part`` per pre-norm residual
branch, with the state-dict names that importance hooks and surgery both use.

A NemotronH block is one branch, ``x + mixer(norm(x))``, with a Mamba2 (M), attention (*) or MLP (-)
mixer. A Llama decoder layer is two: ``input_layernorm`` + ``self_attn``, then
``post_attention_layernorm`` + ``mlp``. MoE blocks (NemotronH ``E``) are not supported.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from posttrain import PosttrainError

FAMILIES = ("nemotron_h", "llama")
LETTER = {"linear_attention": "M", "full_attention": "*", "mlp": "-"}


@dataclass(frozen=True)
class Part:
    layer: int  # index in model.model.layers
    kind: str  # M, * or -
    norm: nn.Module  # the hidden-size RMSNorm in front of the mixer
    mixer: nn.Module
    norm_key: str  # state-dict key of the norm weight
    prefix: str  # state-dict prefix of the mixer, ending in "."


@dataclass(frozen=True)
class Layout:
    family: str
    layers: nn.ModuleList
    parts: list[Part]
    embed_key: str
    final_norm: nn.Module
    final_norm_key: str


def family(config) -> str:
    kind = getattr(config, "model_type", None)
    if kind not in FAMILIES:
        raise PosttrainError(f"model: model_type {kind!r} cannot be pruned; prune knows {list(FAMILIES)}")
    return kind


def layer_letters(config) -> str:
    """One letter per layer: NemotronH's ``hybrid_override_pattern``; ``L`` for a Llama layer."""
    if family(config) == "llama":
        return "L" * config.num_hidden_layers
    pattern = config.hybrid_override_pattern
    if set(pattern) - set("M*-"):
        raise PosttrainError(f"model: layer pattern {pattern!r}: prune supports M, * and - blocks (no MoE)")
    return pattern


def layout(model) -> Layout:
    cfg = model.config
    base = model.model
    if family(cfg) == "llama":
        parts = []
        for i, layer in enumerate(base.layers):
            pre = f"model.layers.{i}."
            parts.append(
                Part(
                    i,
                    "*",
                    layer.input_layernorm,
                    layer.self_attn,
                    pre + "input_layernorm.weight",
                    pre + "self_attn.",
                )
            )
            parts.append(
                Part(
                    i,
                    "-",
                    layer.post_attention_layernorm,
                    layer.mlp,
                    pre + "post_attention_layernorm.weight",
                    pre + "mlp.",
                )
            )
        return Layout(
            "llama", base.layers, parts, "model.embed_tokens.weight", base.norm, "model.norm.weight"
        )
    letters = layer_letters(cfg)
    parts = [
        Part(i, letters[i], b.norm, b.mixer, f"model.layers.{i}.norm.weight", f"model.layers.{i}.mixer.")
        for i, b in enumerate(base.layers)
    ]
    return Layout(
        "nemotron_h", base.layers, parts, "model.embeddings.weight", base.norm_f, "model.norm_f.weight"
    )
