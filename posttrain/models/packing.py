"""Padding-free packing on the torch path: each sample's attention and Mamba state kept apart.

TRL's padding-free collator (``packing_strategy=bfd``) flattens a batch into one row and passes
``position_ids`` (reset to 0 at each sample), ``seq_idx`` (the sample index of each token) and
``cu_seq_lens_q``. Attention keeps samples apart on its own: transformers' mask builder reads the
resets in ``position_ids`` and makes the causal mask block-diagonal, but only without a cache
(``use_cache=False``, which TRL's ``SFTTrainer.compute_loss`` passes), and at the cost of one
``T x T`` product over the whole row. The Mamba mixer does not: transformers 5.24's torch fallbacks
for the causal conv and the chunked scan refuse ``seq_idx`` (a ``ValueError`` naming mamba-ssm) and,
given only ``position_ids``, let conv window and SSM state run across samples.

* ``install()`` replaces three functions in ``modeling_nemotron_h`` when the kernels are absent:
  ``causal_conv1d_fn`` and ``mamba2_chunk_scan`` take ``seq_idx`` (``posttrain.models.ssd``: the
  whole row at once, state reset at each sample start); without ``seq_idx`` they are the stock
  functions. ``mamba2_split_conv1d_scan_combined`` (the fused training shortcut, kernels only)
  returns ``None``, the stock torch answer that sends the mixer down the unfused path.
* ``use_varlen_attention(model)`` switches an ``sdpa`` model to SDPA run per sample on packed rows
  (``sum L_i^2`` instead of ``T^2``), and to plain SDPA otherwise.

With mamba-ssm and causal-conv1d installed nothing is replaced: their kernels take ``seq_idx``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from posttrain.models.ssd import causal_conv1d_packed, chunk_scan_packed

_INSTALLED: dict[str, Any] = {}


def kernels_available() -> bool:
    """Whether mamba-ssm and causal-conv1d (CUDA kernels) can serve NemotronH's packed path."""
    return (
        torch.cuda.is_available()
        and importlib.util.find_spec("mamba_ssm") is not None
        and importlib.util.find_spec("causal_conv1d") is not None
    )


CACHE_ERROR = (
    "a packed row (seq_idx) was run with a cache: pass use_cache=False (transformers' attention mask "
    "ignores the sample boundaries when there is a cache)"
)


def _conv(stock):
    def causal_conv1d_fn(hidden_states, weight, bias=None, activation=None, seq_idx=None, **_):
        if seq_idx is None:
            return stock(hidden_states, weight, bias, activation=activation)
        if hidden_states.shape[-1] != seq_idx.shape[-1]:  # a cached left context was prepended
            raise ValueError(CACHE_ERROR)
        return causal_conv1d_packed(hidden_states, weight, bias, activation, seq_idx)

    return causal_conv1d_fn


def _scan(stock):
    def mamba2_chunk_scan(hidden_states, dt, A, B, C, chunk_size, seq_idx=None, **kwargs):
        if seq_idx is None:
            return stock(hidden_states, dt, A, B, C, chunk_size, **kwargs)
        if kwargs.get("initial_states") is not None or kwargs.get("return_final_states"):
            raise ValueError(CACHE_ERROR)
        keep = ("D", "dt_bias", "dt_softplus", "dt_limit")
        return chunk_scan_packed(
            hidden_states, dt, A, B, C, chunk_size, seq_idx, **{k: kwargs[k] for k in keep if k in kwargs}
        )

    return mamba2_chunk_scan


def _unfused(*_, **__):
    return None


VARLEN = "posttrain_varlen_sdpa"


def varlen_sdpa(
    module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs
):
    """SDPA run sample by sample on a padding-free row (``cu_seq_lens_q`` from TRL's collator), causal
    within each sample: the same result as the block-diagonal mask, at sum(L_i^2) instead of T^2 cost.
    Anything else (padded batches, a KV cache) goes to transformers' ``sdpa_attention_forward``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    packed = cu is not None and query.shape[0] == 1 and query.shape[2] == key.shape[2] == int(cu[-1])
    if not packed:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    bounds = cu.tolist()
    outs = [
        sdpa_attention_forward(
            module, query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], None,
            dropout=dropout, scaling=scaling, is_causal=True,
        )[0]
        for s, e in zip(bounds[:-1], bounds[1:])
    ]  # fmt: skip
    return torch.cat(outs, dim=1), None


def use_varlen_attention(model) -> bool:
    """Switch an ``sdpa`` model to ``varlen_sdpa`` (registered once with transformers' attention and
    mask interfaces). Returns whether it switched; other implementations are left alone."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) not in ("sdpa", VARLEN):
        return False
    AttentionInterface.register(VARLEN, varlen_sdpa)
    AttentionMaskInterface.register(VARLEN, sdpa_mask)
    model.set_attn_implementation(VARLEN)
    return True


def install() -> bool:
    """Make NemotronH's torch path respect sample boundaries (idempotent). Returns whether it replaced
    anything: ``False`` when the kernels are present and take ``seq_idx`` themselves."""
    if kernels_available():
        return False
    from transformers.models.nemotron_h import modeling_nemotron_h as m

    if not _INSTALLED:
        # The stock functions are transformers' kernel wrappers around the torch fallbacks; the
        # undecorated fallback is kept by functools.wraps as ``__wrapped__``.
        conv = getattr(m.causal_conv1d_fn, "__wrapped__", m.causal_conv1d_fn)
        scan = getattr(m.mamba2_chunk_scan, "__wrapped__", m.mamba2_chunk_scan)
        _INSTALLED.update(
            causal_conv1d_fn=m.causal_conv1d_fn,
            mamba2_chunk_scan=m.mamba2_chunk_scan,
            mamba2_split_conv1d_scan_combined=m.mamba2_split_conv1d_scan_combined,
        )
        m.causal_conv1d_fn = _conv(conv)
        m.mamba2_chunk_scan = _scan(scan)
        m.mamba2_split_conv1d_scan_combined = _unfused
    return True


def uninstall() -> None:
    """Restore transformers' functions (tests)."""
    if not _INSTALLED:
        return
    from transformers.models.nemotron_h import modeling_nemotron_h as m

    for name, fn in _INSTALLED.items():
        setattr(m, name, fn)
    _INSTALLED.clear()
