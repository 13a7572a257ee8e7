"""Inference memory at a context length: weights + KV cache + Mamba state against a GPU budget.

``posttrain memory model=<name> context=131072 batch=1 [key=value ...]`` (``memory_cli``). Nano 2's
width search ranks candidates by exactly this sum at 128k context, batch 1, on an A10G:
budget = 22.06 GiB x 0.95 - 1.3 GiB (vision encoder) = 19.66 GiB. With h hidden, V vocab, B(t) the
bytes of dtype t, n_M / n_A the Mamba / attention layer counts:

- params, counted as HF's NemotronH / Mamba2 / Llama modules build them. Every block is an RMSNorm (h)
  plus one mixer; a Llama layer is the pair ``*-`` (its input and post-attention norms).
  Embedding V h, lm_head V h unless tied (HF's NemotronH never ties: ``NEMOTRON_H_TIES``), final norm h.
  Mamba2 (d = heads x head_dim, c = d + 2 g s): in_proj h (2d + 2gs + heads), conv1d c k (+ c bias),
  dt_bias + A_log + D 3 heads, gated RMSNorm d, out_proj d h (+ biases when ``use_bias``).
  Attention: q h H dh, k and v h K dh each, o H dh h (NemotronH never has biases there; Llama: ``attention_bias``).
  MLP: up + down 2 h f (NemotronH, relu^2), plus gate h f (Llama, SiLU-gated); + biases when ``mlp_bias``.
- weights = params B(dtype).
- KV cache = 2 (K, V) n_A K dh context batch B(dtype): the only term that grows with context.
- Mamba state = n_M batch (c k B(dtype) + heads head_dim s B(ssm_cache_dtype)). The conv state keeps k
  columns, as HF's cache does (vLLM keeps k - 1, 1/k of a term that is under 3 MiB for Nano 2), in the
  model dtype (vLLM's ``mamba_cache_dtype=auto``); the SSM state is fp32 by default, as the model
  card and NeMo-RL run it (``mamba_ssm_cache_dtype``).
- max_context_that_fits = floor((budget - weights - Mamba state) / KV bytes per token), in whole tokens
  (0 when even that is negative; null for a model with no attention layer that fits, which any context
  does). Sizes are compared in integer bytes, the budget rounded down to a byte, so ``fits`` holds at
  that context and fails one token later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from posttrain import PosttrainError

GIB = 2**30
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# transformers' NemotronHForCausalLM never ties lm_head to the embedding (its _tied_weights_keys is
# empty, 5.24), whatever tie_word_embeddings says; the exact-count test notices if that changes.
NEMOTRON_H_TIES = False
GPUS = {"a10g": 22.06}  # usable GiB, as Nano 2 counts its A10G; others: pass budget_gib=


@dataclass(frozen=True)
class Arch:
    """What memory depends on. ``pattern``: one letter per block, M Mamba2, * attention, - MLP."""

    pattern: str
    hidden_size: int
    vocab_size: int
    tie_word_embeddings: bool = False
    num_attention_heads: int = 0
    num_key_value_heads: int = 0
    head_dim: int = 0
    intermediate_size: int = 0
    gated_mlp: bool = False  # Llama's gate_proj; NemotronH's relu^2 MLP has none
    attention_bias: bool = False
    mlp_bias: bool = False
    mamba_num_heads: int = 0
    mamba_head_dim: int = 0
    n_groups: int = 1
    ssm_state_size: int = 0
    conv_kernel: int = 4  # NemotronHConfig's default; ModelConfig has no field for it
    use_bias: bool = False  # Mamba2 in_proj / out_proj
    use_conv_bias: bool = True

    def __post_init__(self) -> None:
        if not self.pattern or set(self.pattern) - set("M*-"):
            raise PosttrainError(
                f"model: layer pattern {self.pattern!r}: use M (Mamba2), * (attention), - (MLP)"
            )

    @property
    def d_inner(self) -> int:
        return self.mamba_num_heads * self.mamba_head_dim

    @property
    def conv_dim(self) -> int:
        return self.d_inner + 2 * self.n_groups * self.ssm_state_size

    def count(self, letter: str) -> int:
        return self.pattern.count(letter)


MODEL_CONFIG_FIELDS = ("hidden_size", "vocab_size", "num_attention_heads", "num_key_value_heads", "head_dim")
MODEL_CONFIG_FIELDS += (
    "intermediate_size",
    "mamba_num_heads",
    "mamba_head_dim",
    "n_groups",
    "ssm_state_size",
)


def _read(cfg: Any, key: str) -> Any:
    return cfg[key] if isinstance(cfg, Mapping) else getattr(cfg, key)


def arch_from_model_config(cfg: Any) -> Arch:
    """A ``ModelConfig`` (or a mapping with its fields): a NemotronH, as ``build_tiny_model`` builds it
    (untied whatever ``tie_word_embeddings`` says: ``NEMOTRON_H_TIES``)."""
    tied = bool(_read(cfg, "tie_word_embeddings")) and NEMOTRON_H_TIES
    return Arch(
        pattern=_read(cfg, "hybrid_override_pattern"),
        tie_word_embeddings=tied,
        **{k: _read(cfg, k) for k in MODEL_CONFIG_FIELDS},
    )


def arch_from_hf(cfg: Any) -> Arch:
    """A transformers config: ``nemotron_h`` (hybrid), ``mamba2`` (pure Mamba) or ``llama`` (pure
    Transformer). Reads the config object, so transformers' own defaults and renamed keys apply."""
    kind = getattr(cfg, "model_type", None)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    common = {"hidden_size": cfg.hidden_size, "vocab_size": cfg.vocab_size, "tie_word_embeddings": tied}
    if kind == "nemotron_h":
        common["tie_word_embeddings"] = tied and NEMOTRON_H_TIES
        if "E" in cfg.hybrid_override_pattern:
            raise PosttrainError("model: NemotronH MoE layers (E) are not supported by the planner")
        return Arch(
            pattern=cfg.hybrid_override_pattern,
            num_attention_heads=cfg.num_attention_heads,
            num_key_value_heads=cfg.num_key_value_heads,
            head_dim=cfg.head_dim,
            intermediate_size=cfg.intermediate_size,
            mlp_bias=cfg.mlp_bias,
            mamba_num_heads=cfg.mamba_num_heads,
            mamba_head_dim=cfg.mamba_head_dim,
            n_groups=cfg.n_groups,
            ssm_state_size=cfg.ssm_state_size,
            conv_kernel=cfg.conv_kernel,
            use_bias=cfg.use_bias,
            use_conv_bias=cfg.use_conv_bias,
            **common,
        )
    if kind == "mamba2":
        return Arch(
            pattern="M" * cfg.num_hidden_layers,
            mamba_num_heads=cfg.num_heads,
            mamba_head_dim=cfg.head_dim,
            n_groups=cfg.n_groups,
            ssm_state_size=cfg.state_size,
            conv_kernel=cfg.conv_kernel,
            use_bias=cfg.use_bias,
            use_conv_bias=cfg.use_conv_bias,
            **common,
        )
    if kind == "llama":
        return Arch(
            pattern="*-" * cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads,
            num_key_value_heads=cfg.num_key_value_heads,
            head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads,
            intermediate_size=cfg.intermediate_size,
            gated_mlp=True,
            attention_bias=cfg.attention_bias,
            mlp_bias=cfg.mlp_bias,
            **common,
        )
    raise PosttrainError(
        f"model: model_type {kind!r} is not supported; the planner knows nemotron_h, mamba2, llama"
    )


def param_count(a: Arch) -> int:
    """Exactly ``sum(p.numel() for p in model.parameters())`` of the HF model (formulas: module doc)."""
    h, s = a.hidden_size, a.ssm_state_size
    proj = 2 * a.d_inner + 2 * a.n_groups * s + a.mamba_num_heads
    mamba = h * proj + a.conv_dim * a.conv_kernel + 3 * a.mamba_num_heads + a.d_inner + a.d_inner * h
    mamba += (proj + h) * a.use_bias + a.conv_dim * a.use_conv_bias
    q, kv = a.num_attention_heads * a.head_dim, a.num_key_value_heads * a.head_dim
    attn = 2 * h * q + 2 * h * kv + (q + 2 * kv + h) * a.attention_bias
    n_mats = 3 if a.gated_mlp else 2
    mlp = n_mats * h * a.intermediate_size + ((n_mats - 1) * a.intermediate_size + h) * a.mlp_bias
    blocks = a.count("M") * mamba + a.count("*") * attn + a.count("-") * mlp + len(a.pattern) * h
    return blocks + h + a.vocab_size * h * (1 if a.tie_word_embeddings else 2)


def kv_bytes_per_token(a: Arch, batch: int, dtype: str) -> int:
    return 2 * a.count("*") * a.num_key_value_heads * a.head_dim * batch * BYTES[dtype]


def mamba_state_bytes(a: Arch, batch: int, dtype: str, ssm_cache_dtype: str) -> int:
    conv = a.conv_dim * a.conv_kernel * BYTES[dtype]
    ssm = a.mamba_num_heads * a.mamba_head_dim * a.ssm_state_size * BYTES[ssm_cache_dtype]
    return a.count("M") * batch * (conv + ssm)


def gpu_budget_gib(gpu: str, utilization: float, reserve_gib: float) -> float:
    """usable(gpu) x utilization - reserve (a10g with the defaults: 22.06 x 0.95 - 1.3 = 19.657)."""
    return round(GPUS[gpu] * utilization - reserve_gib, 9)  # without float noise (19.656999999999996)


@dataclass(frozen=True)
class MemoryPlan:
    """What ``posttrain memory`` prints (``json=true``: exactly these keys)."""

    model: str
    context: int
    batch: int
    dtype: str
    ssm_cache_dtype: str
    params: int
    weights_gib: float
    kv_cache_gib: float
    mamba_state_gib: float
    total_gib: float
    budget_gib: float
    fits: bool
    max_context_that_fits: int | None


def plan_memory(
    a: Arch,
    *,
    context: int,
    batch: int,
    budget_gib: float,
    dtype: str = "bfloat16",
    ssm_cache_dtype: str = "float32",
    model: str = "",
) -> MemoryPlan:
    """The plan (formulas: module doc). Pure: no I/O, no torch."""
    params = param_count(a)
    weights, per_token = params * BYTES[dtype], kv_bytes_per_token(a, batch, dtype)
    state = mamba_state_bytes(a, batch, ssm_cache_dtype=ssm_cache_dtype, dtype=dtype)
    total, budget = weights + per_token * context + state, math.floor(budget_gib * GIB)
    free = budget - weights - state
    most = None if per_token == 0 and free >= 0 else max(free, 0) // max(per_token, 1)
    return MemoryPlan(
        model, context, batch, dtype, ssm_cache_dtype, params, weights / GIB, per_token * context / GIB,
        state / GIB, total / GIB, budget_gib, total <= budget, most,
    )  # fmt: skip
