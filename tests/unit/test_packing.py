"""Padding-free packing is exact: a packed batch's loss and gradients equal those of its samples run
one by one (fp32), for the hybrid NemotronH (with posttrain.models.packing) and a Llama-style model,
with transformers' block-diagonal SDPA mask and with posttrain's per-sample SDPA."""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM, NemotronHConfig, NemotronHForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from posttrain.models import packing

VOCAB = 97


@functools.cache
def model(kind: str, attn: str = "sdpa"):
    torch.manual_seed(0)
    if kind == "nemotron_h":
        cfg = NemotronHConfig(
            vocab_size=VOCAB, hidden_size=32, hybrid_override_pattern="M*-M", num_attention_heads=2,
            num_key_value_heads=1, head_dim=16, intermediate_size=48, ssm_state_size=8, mamba_num_heads=4,
            mamba_head_dim=8, n_groups=1, chunk_size=8, max_position_embeddings=256,
        )  # fmt: skip
        m = NemotronHForCausalLM(cfg)
    else:
        cfg = LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=256,
        )  # fmt: skip
        m = LlamaForCausalLM(cfg)
    if attn == "varlen":
        assert packing.use_varlen_attention(m)
    return m.float().train()  # train(): the mixer's training branch is the one SFT takes


def token_loss_sum(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits[:-1], ids[1:], reduction="sum")


def separate(m, samples):
    m.zero_grad()
    loss = sum(
        token_loss_sum(m(input_ids=torch.tensor([s]), use_cache=False).logits[0], torch.tensor(s))
        for s in samples
    )
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}


def packed(m, samples, *, keep_seq_idx=True):
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(
        [{"input_ids": s} for s in samples]
    )
    if not keep_seq_idx:
        batch.pop("seq_idx")
    labels, ids = batch.pop("labels"), batch["input_ids"][0]
    m.zero_grad()
    logits = m(**batch, use_cache=False).logits[0]  # as TRL's SFTTrainer.compute_loss passes
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist() + [ids.numel()]
    loss = sum(token_loss_sum(logits[s:e], ids[s:e]) for s, e in zip(starts[:-1], starts[1:]))
    loss.backward()
    assert (labels[0][torch.tensor(starts[:-1])] == -100).all()  # no target crosses a boundary
    return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}


samples_st = st.lists(st.lists(st.integers(1, VOCAB - 1), min_size=2, max_size=21), min_size=2, max_size=4)


@pytest.fixture(scope="module", autouse=True)
def installed():
    packing.install()
    yield
    packing.uninstall()


@pytest.mark.parametrize("attn", ["sdpa", "varlen"])  # the block-diagonal mask; SDPA per sample
@pytest.mark.parametrize("kind", ["nemotron_h", "llama"])
@settings(max_examples=12, deadline=None)
@given(samples=samples_st)
def test_packed_loss_and_grads_equal_one_by_one(kind, attn, samples):
    m = model(kind, attn)
    want_loss, want_grads = separate(m, samples)
    got_loss, got_grads = packed(m, samples)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=1e-5)
    for name, g in want_grads.items():  # fp32 rounding, relative to each tensor's scale
        err = (got_grads[name] - g).abs().max().item()
        assert err <= 1e-5 * g.abs().max().item() + 1e-7, (name, err, g.abs().max().item())


def test_stock_torch_path_leaks_state_across_samples():
    """The bug the override fixes: given only position_ids, the stock Mamba path runs the conv window
    and the SSM state from one sample into the next (attention alone is kept apart)."""
    samples = [[5, 9, 11, 3, 7, 2, 8, 4, 6, 10], [12, 13, 14, 15, 16, 17]]
    packing.uninstall()
    try:
        leaked, _ = packed(model("nemotron_h"), samples, keep_seq_idx=False)
        with pytest.raises(ValueError, match="packed sequences"):
            packed(model("nemotron_h"), samples)  # transformers refuses seq_idx on the torch path
    finally:
        packing.install()
    exact, _ = separate(model("nemotron_h"), samples)
    assert abs(leaked.item() - exact.item()) > 1e-3


def test_a_packed_row_with_a_cache_is_refused():
    """With a cache transformers' mask lets attention cross samples: say so rather than train on it."""
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([{"input_ids": [3] * 9}] * 2)
    batch.pop("labels")
    with pytest.raises(ValueError, match="use_cache=False"):
        model("nemotron_h")(**batch, use_cache=True)


def segments(seq_idx: torch.Tensor) -> list[tuple[int, int]]:
    cuts = (seq_idx[0, 1:] != seq_idx[0, :-1]).nonzero().flatten().add(1).tolist()
    bounds = [0, *cuts, seq_idx.shape[1]]
    return list(zip(bounds[:-1], bounds[1:]))


def test_varlen_attention_runs_sdpa_per_sample(monkeypatch):
    """The per-sample path is the one taken on a packed row: SDPA sees each sample's length, never T."""
    seen, sdpa = [], torch.nn.functional.scaled_dot_product_attention

    def spy(q, *a, **kw):
        seen.append(q.shape[-2])
        return sdpa(q, *a, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    samples = [[3] * 7, [4] * 5, [5] * 9]
    packed(model("llama", "varlen"), samples)
    assert seen and set(seen) == {7, 5, 9}, seen
    seen.clear()
    packed(model("llama", "sdpa"), samples)
    assert set(seen) == {21}, seen  # transformers' path: one masked call over the whole row


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 13), min_size=1, max_size=5),
    chunk=st.sampled_from([3, 4, 8, 64]),
    seed=st.integers(0, 2**16),
)
def test_packed_scan_and_conv_equal_the_stock_functions_per_sample(lengths, chunk, seed):
    """posttrain.models.ssd on a whole packed row == transformers' torch fallbacks run on each sample."""
    from transformers.models.nemotron_h import modeling_nemotron_h as m

    from posttrain.models.ssd import causal_conv1d_packed, chunk_scan_packed

    stock_scan, stock_conv = packing._INSTALLED["mamba2_chunk_scan"], packing._INSTALLED["causal_conv1d_fn"]
    stock_scan, stock_conv = stock_scan.__wrapped__, stock_conv.__wrapped__
    assert m.mamba2_chunk_scan is not stock_scan  # the fixture installed the override
    g = torch.Generator().manual_seed(seed)
    T, h, p, n, groups, ch, k = sum(lengths), 4, 3, 5, 2, 6, 4
    x, dt = torch.randn(1, T, h, p, generator=g), torch.randn(1, T, h, generator=g)
    B, C = torch.randn(1, T, groups, n, generator=g), torch.randn(1, T, groups, n, generator=g)
    A, D, dt_bias = (
        -torch.rand(h, generator=g) - 0.1,
        torch.randn(h, generator=g),
        torch.randn(h, generator=g),
    )
    seq = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))[None]
    kw = {"D": D, "dt_bias": dt_bias, "dt_softplus": True, "dt_limit": (0.001, float("inf"))}
    got = chunk_scan_packed(x, dt, A, B, C, chunk, seq, **kw)
    cuts = segments(seq)
    want = torch.cat(
        [stock_scan(x[:, s:e], dt[:, s:e], A, B[:, s:e], C[:, s:e], chunk, **kw) for s, e in cuts], 1
    )
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    u, w, bias = (
        torch.randn(1, ch, T, generator=g),
        torch.randn(ch, k, generator=g),
        torch.randn(ch, generator=g),
    )
    got = causal_conv1d_packed(u, w, bias, "silu", seq)
    want = torch.cat([stock_conv(u[:, :, s:e], w, bias, activation="silu") for s, e in cuts], -1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
