"""Mamba-2's causal conv and chunked SSD scan over a packed row, with the state reset at each sample.

The recurrence is ``h_t = exp(a_t) h_{t-1} + B_t x_t dt_t``, ``y_t = C_t h_t + D x_t`` with
``a_t = A dt_t`` (Dao & Gu 2024, the SSD chunked algorithm). A sample that starts at ``t`` must not see
``h_{t-1}``, which is exactly ``a_t = -inf`` (decay 0). So the packed scan is the plain chunked scan
with ``a`` set to ``-inf`` at every sample start, and one change to keep it finite: the decay from a
position to its chunk's end is taken as an exclusive reverse cumulative sum, not as the difference
``cumsum[-1] - cumsum[l]`` (``-inf - -inf``). Every other term (the intra-chunk segment sums, the
chunk-to-chunk decays, the decay from a chunk's start) already sums without subtracting, and
``exp(-inf) = 0`` zeroes exactly the cross-sample paths, forward and backward.

The conv is the depthwise causal conv written as ``K`` shifted taps, each tap masked where it would
read another sample. Both run the whole row at once: no Python loop over samples. The same shapes
and arguments as transformers' torch fallbacks (``modeling_nemotron_h``), fp32 inside.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN


def sample_starts(seq_idx: torch.Tensor) -> torch.Tensor:
    """``(b, L)`` bool: True where a new sample begins (never at 0: there the state is zero anyway)."""
    starts = torch.zeros_like(seq_idx, dtype=torch.bool)
    starts[:, 1:] = seq_idx[:, 1:] != seq_idx[:, :-1]
    return starts


def causal_conv1d_packed(x, weight, bias, activation, seq_idx):
    """Depthwise causal conv of ``x`` ``(b, C, L)`` with ``weight`` ``(C, K)``, no tap reading
    another sample than its output's (``seq_idx`` ``(b, L)``)."""
    k, length, seq = weight.shape[-1], x.shape[-1], seq_idx
    xf = x.to(weight.dtype)
    xp = F.pad(xf, (k - 1, 0))
    sp = F.pad(seq, (k - 1, 0), value=-1)
    out = torch.zeros_like(xf)
    for j in range(k):  # tap j reads x[t - (k - 1) + j]
        same = (sp[:, j : j + length] == seq)[:, None, :]
        out = out + weight[:, j, None] * (xp[..., j : j + length] * same)
    if bias is not None:
        out = out + bias[:, None]
    if activation is not None:
        out = ACT2FN[activation](out)
    return out.to(x.dtype)


def _segsum(a: torch.Tensor) -> torch.Tensor:
    """``[..., l, s] = sum_{s < k <= l} a_k`` for ``l >= s``, else ``-inf`` (sums, never differences)."""
    n = a.size(-1)
    a = a[..., None].expand(*a.size(), n)
    a = a.masked_fill(~torch.tril(torch.ones(n, n, dtype=torch.bool, device=a.device), diagonal=-1), 0)
    s = torch.cumsum(a, dim=-2)
    return s.masked_fill(~torch.tril(torch.ones(n, n, dtype=torch.bool, device=a.device)), -torch.inf)


def chunk_scan_packed(
    x, dt, A, B, C, chunk_size, seq_idx, D=None, dt_bias=None, dt_softplus=False, dt_limit=(0.0, float("inf"))
):
    """SSD scan of ``x`` ``(b, L, h, p)`` with ``dt`` ``(b, L, h)``, ``A`` ``(h,)``, ``B``/``C``
    ``(b, L, g, n)``, the state reset where ``seq_idx`` ``(b, L)`` changes. Returns ``(b, L, h, p)``."""
    b, length, h, p = x.shape
    if dt_bias is not None:
        dt = dt + dt_bias.to(dt.dtype)
    if dt_softplus:
        dt = F.softplus(dt)
    dt = torch.clamp(dt, min=dt_limit[0], max=dt_limit[1]).float()
    x = x.float()
    B = B.float().repeat_interleave(h // B.shape[2], dim=2)
    C = C.float().repeat_interleave(h // C.shape[2], dim=2)
    residual = D[..., None] * x if D is not None else None
    xdt = x * dt[..., None]
    a = (A.float() * dt).masked_fill(sample_starts(seq_idx)[..., None], -torch.inf)

    pad = (-length) % chunk_size
    xdt, a, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (xdt, a, B, C))
    c = xdt.shape[1] // chunk_size
    xdt, B, C = (t.reshape(b, c, chunk_size, h, -1) for t in (xdt, B, C))  # (b, c, l, h, p|n)
    a = a.reshape(b, c, chunk_size, h).permute(0, 3, 1, 2)  # (b, h, c, l)
    cum = torch.cumsum(a, dim=-1)

    # within a chunk: y_l = sum_{s <= l} C_l . B_s exp(sum_{s < k <= l} a_k) x_s dt_s
    decay = torch.exp(_segsum(a))  # (b, h, c, l, s)
    y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, decay, xdt)
    # each chunk's end state; the decay to the chunk's end is sum_{k > l} a_k, a reverse cumsum
    to_end = F.pad(torch.flip(torch.cumsum(torch.flip(a, [-1]), dim=-1), [-1])[..., 1:], (0, 1))
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, torch.exp(to_end), xdt)
    # chunk-to-chunk: the state entering chunk i sums the end states of chunks j < i, decayed
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    chunk_decay = torch.exp(_segsum(F.pad(cum[..., -1], (1, 0))))  # (b, h, c + 1, c + 1)
    entering = torch.einsum("bhij,bjhpn->bihpn", chunk_decay, states)[:, :-1]
    y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, entering, torch.exp(cum))

    y = (y_diag + y_off).reshape(b, c * chunk_size, h, p)[:, :length]
    return y + residual if residual is not None else y
