"""Minitron pruning (``posttrain.compress``) on tiny random NemotronH and Llama models.

Properties: an identity block is ranked last and removing it changes no logit; channels, neurons and
heads whose activations are exactly zero are ranked last and pruning them changes no logit (pruning
rescales the sliced RMSNorms, which is exact up to eps; eps is 1e-30 here, as a random tiny model's
Mamba gated-norm input has a mean square near 1e-10); Mamba heads never cross groups;
the report's counts and the rewritten config match the model, which round-trips through
``save_pretrained``; importance does not depend on batch order; bad targets name their key.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    NemotronHConfig,
    NemotronHForCausalLM,
)

from posttrain import PosttrainError
from posttrain.compress.importance import importance
from posttrain.compress.layout import layout
from posttrain.compress.prune import keep_grouped, numel, prune, select
from posttrain.compress.targets import Targets

FEW = settings(max_examples=10, deadline=None)
V = 61


def nemotron(seed: int = 0, *, pattern: str = "M-*M-*", n_groups: int = 2, eps: float = 1e-30):
    cfg = NemotronHConfig(
        vocab_size=V,
        hidden_size=32,
        hybrid_override_pattern=pattern,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=24,
        ssm_state_size=4,
        mamba_num_heads=8,
        mamba_head_dim=4,
        n_groups=n_groups,
        chunk_size=8,
        layer_norm_epsilon=eps,
    )
    torch.manual_seed(seed)
    return NemotronHForCausalLM(cfg).eval()


def llama(seed: int = 0, *, eps: float = 1e-30):
    cfg = LlamaConfig(
        vocab_size=V,
        hidden_size=32,
        intermediate_size=24,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=eps,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


ARCHS = {"nemotron_h": nemotron, "llama": llama}


def batches(seed: int = 0, n: int = 3) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, V, (3, 11), generator=g)
        mask = torch.ones_like(ids)
        mask[1, 8:] = 0  # right padding
        mask[2, 5:] = 0
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


@torch.no_grad()
def logits(model, bs) -> torch.Tensor:
    """Logits at the real (unpadded) positions of every batch."""
    outs = [model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits for b in bs]
    return torch.cat([o[b["attention_mask"].bool()] for o, b in zip(outs, bs)])


def parts(model, kind: str):
    return [p for p in layout(model).parts if p.kind == kind]


def out_weight(p) -> torch.Tensor:
    """The weight with which a branch writes into the residual stream (rows = hidden channels)."""
    return getattr(p.mixer, {"M": "out_proj", "*": "o_proj", "-": "down_proj"}[p.kind]).weight


# (a) an identity block ------------------------------------------------------------------------------


@FEW
@given(arch=st.sampled_from(sorted(ARCHS)), seed=st.integers(0, 99), data=st.data())
def test_identity_block_ranks_last_and_removing_it_keeps_logits(arch, seed, data):
    model, bs = ARCHS[arch](seed), batches(seed)
    n = len(layout(model).layers)
    i = data.draw(st.integers(0, n - 1), label="layer")
    with torch.no_grad():
        for p in layout(model).parts:
            if p.layer == i:
                out_weight(p).zero_()  # the block now returns its input: x + 0
    before = logits(model, bs)
    imp = importance(model, bs, logit_mse=True)
    assert imp.logit_mse[i] == 0 and int(imp.logit_mse.argmin()) == i
    assert int(imp.block.argmin()) == i
    for depth in ("block", "logit_mse"):
        new, report = prune(model, Targets(num_layers=n - 1), imp, depth=depth)
        assert report["removed_layers"] == [i]
        torch.testing.assert_close(logits(new, bs), before, atol=1e-5, rtol=0)


# (b) exactly-zero activations -----------------------------------------------------------------------


def _zero_ffn(model, rng, k):
    dead = {}
    for p in parts(model, "-"):
        dead[p.layer] = torch.randperm(24, generator=rng)[: 24 - k]
        p.mixer.up_proj.weight[dead[p.layer]] = 0  # relu^2(0) = 0; Llama: silu(gate) * 0 = 0
    return Targets(intermediate_size=k), "ffn", dead


def _zero_mamba(model, rng, k):
    cfg, dead = model.config, {}
    per, g = cfg.mamba_num_heads // cfg.n_groups, cfg.n_groups
    d, hd = cfg.mamba_num_heads * cfg.mamba_head_dim, cfg.mamba_head_dim
    for p in parts(model, "M"):
        heads = torch.cat([q * per + torch.randperm(per, generator=rng)[: per - k // g] for q in range(g)])
        ch = (heads[:, None] * hd + torch.arange(hd)).flatten()
        p.mixer.in_proj.weight[d + ch] = 0  # the x slice: zero activation where importance looks
        p.mixer.conv1d.bias[ch] = 0  # silu(conv(0) + 0) = 0, so the head's scan output is 0 too
        dead[p.layer] = heads
    return Targets(mamba_num_heads=k), "mamba", dead


def _zero_attention(model, rng, k):
    cfg, dead = model.config, {}
    per, kv, hd = cfg.num_attention_heads // cfg.num_key_value_heads, cfg.num_key_value_heads, cfg.head_dim
    for p in parts(model, "*"):
        heads = torch.cat([q * per + torch.randperm(per, generator=rng)[: per - k // kv] for q in range(kv)])
        ch = (heads[:, None] * hd + torch.arange(hd)).flatten()
        p.mixer.o_proj.weight[:, ch] = 0  # the head writes nothing into the residual stream
        dead[p.layer] = heads
    return Targets(num_attention_heads=k), "attention", dead


def _zero_hidden(model, rng, k):
    dead = torch.randperm(32, generator=rng)[: 32 - k]
    model.get_input_embeddings().weight[:, dead] = 0
    for p in layout(model).parts:
        out_weight(p)[dead] = 0  # the residual stream is zero on these channels, so is every norm's output
    return Targets(hidden_size=k), "hidden", dead


AXES = {"ffn": _zero_ffn, "mamba": _zero_mamba, "attention": _zero_attention, "hidden": _zero_hidden}
CASES = [(a, x) for a in ARCHS for x in AXES if not (a == "llama" and x == "mamba")]


@pytest.mark.parametrize(("arch", "axis"), CASES)
@FEW
@given(seed=st.integers(0, 99), data=st.data())
def test_zero_activations_rank_last_and_pruning_them_keeps_logits(arch, axis, seed, data):
    model, bs = ARCHS[arch](seed), batches(seed)
    limit = {"ffn": 23, "mamba": 3, "attention": 1, "hidden": 31}[axis]
    per = data.draw(st.integers(1, limit), label="kept (per group for heads)")
    k = per * {"mamba": 2, "attention": 2}.get(axis, 1)
    with torch.no_grad():
        targets, field, dead = AXES[axis](model, torch.Generator().manual_seed(seed), k)
    before = logits(model, bs)
    imp = importance(model, bs)
    sel = select(model, targets, imp)
    kept = getattr(sel, field)
    for layer, d in ({None: dead} if axis == "hidden" else dead).items():
        scores = imp.hidden if layer is None else getattr(imp, field)[layer]
        assert torch.all(scores[d] == 0)
        ks = kept if layer is None else kept[layer]
        assert not set(ks.tolist()) & set(d.tolist()), "a zero-activation unit was kept"
    new, _ = prune(model, targets, imp)
    torch.testing.assert_close(logits(new, bs), before, atol=1e-5, rtol=0)


def test_norm_rescaling_is_what_keeps_pruned_zero_channels_exact():
    """With the default eps, rescaled norms stay close; plain slicing (ModelOpt) is off by sqrt(H/H')."""
    model, bs = nemotron(1, eps=1e-5), batches(1)
    with torch.no_grad():
        targets, _, _ = _zero_hidden(model, torch.Generator().manual_seed(1), 24)
    before, imp = logits(model, bs), importance(model, bs)
    err = {
        r: (logits(prune(model, targets, imp, rescale_norms=r)[0], bs) - before).abs().max() for r in (0, 1)
    }
    assert err[True] < 0.05 * err[False]


# (c) Mamba groups -----------------------------------------------------------------------------------


@FEW
@given(
    groups=st.sampled_from([1, 2, 4]),
    per=st.integers(1, 4),
    data=st.data(),
)
def test_kept_mamba_heads_never_cross_groups(groups, per, data):
    k = data.draw(st.integers(1, per), label="kept per group")
    scores = torch.tensor(data.draw(st.lists(st.floats(0, 1), min_size=groups * per, max_size=groups * per)))
    kept = keep_grouped(scores, k * groups, groups)
    assert len(kept) == k * groups and kept.tolist() == sorted(set(kept.tolist()))
    for j, h in enumerate(kept.tolist()):
        assert h // per == j // k  # new head j sits in the group its old head came from


def test_pruned_mamba_heads_carry_their_own_parameters():
    model, bs = nemotron(3, n_groups=4), batches(3)
    with torch.no_grad():
        for p in parts(model, "M"):
            p.mixer.dt_bias.copy_(torch.arange(8.0))  # label each head by its index
    imp = importance(model, bs)
    new, _ = prune(model, Targets(mamba_num_heads=4), imp)
    for p, q in zip(parts(model, "M"), parts(new, "M")):
        heads = q.mixer.dt_bias.long()
        assert (heads // 2).tolist() == [0, 1, 2, 3]  # one head from each of the 4 groups, in order
        d, bc, hd = 32, 2 * 4 * 4, 4
        ch = (heads[:, None] * hd + torch.arange(hd)).flatten()
        w, v = p.mixer.in_proj.weight, q.mixer.in_proj.weight
        torch.testing.assert_close(v[16 : 16 + 16], w[d + ch])  # x rows
        torch.testing.assert_close(v[32 : 32 + bc], w[2 * d : 2 * d + bc])  # B, C untouched
        assert q.mixer.norm.group_size == 4 and q.mixer.n_groups == 4


# (d) the report, the config, the checkpoint ---------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_report_config_and_checkpoint_round_trip(arch, tmp_path):
    model, bs = ARCHS[arch](5), batches(5)
    targets = Targets(num_layers=2, hidden_size=20, intermediate_size=10, num_attention_heads=2)
    if arch == "nemotron_h":
        targets = Targets(**{**targets.__dict__, "num_layers": 4, "mamba_num_heads": 4})
    new, report = prune(model, targets, importance(model, bs))
    assert report["params_before"] == numel(model) and report["params_after"] == numel(new)
    assert report["params_after"] < report["params_before"]
    cfg = new.config
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads) == (20, 10, 2)
    assert (
        cfg.num_key_value_heads == 2
        and len(report["removed_layers"]) == len(layout(model).layers) - cfg.num_hidden_layers
    )
    if arch == "nemotron_h":
        old = model.config.hybrid_override_pattern
        keep = [c for i, c in enumerate(old) if i not in report["removed_layers"]]
        assert cfg.hybrid_override_pattern == "".join(keep) and len(keep) == 4
        assert cfg.mamba_num_heads == 4 and report["kept"]["hybrid_override_pattern"] == "".join(keep)
    new.save_pretrained(tmp_path)
    back = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(back) is type(model)
    torch.testing.assert_close(logits(back, bs), logits(new, bs), atol=0, rtol=0)


# (e) batch order ------------------------------------------------------------------------------------


def flat(imp) -> dict[str, torch.Tensor]:
    out = {}
    for key, v in imp.to_json().items():
        items = v.items() if isinstance(v, dict) else [("", v)]
        out |= {f"{key}{i}": torch.tensor(x, dtype=torch.float64) for i, x in items if x is not None}
    return out


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_importance_does_not_depend_on_batch_order(arch):
    model, bs = ARCHS[arch](7), batches(7)
    a = flat(importance(model, bs, logit_mse=True))
    rows = torch.tensor([2, 0, 1])
    shuffled = [{k: v[rows] for k, v in b.items()} for b in bs[::-1]]  # batches and rows within them
    b = flat(importance(model, shuffled, logit_mse=True))
    assert a.keys() == b.keys() and {"hidden", "block", "logit_mse", "ffn1", "attention2"} <= a.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-9, msg=key)


# (f) bad targets ------------------------------------------------------------------------------------

BAD = [
    ("nemotron_h", Targets(num_layers=7), "num_layers", "larger than the model's 6 layers"),
    ("nemotron_h", Targets(hidden_size=33), "hidden_size", "larger than the model's hidden_size 32"),
    ("nemotron_h", Targets(intermediate_size=25), "intermediate_size", "larger"),
    ("nemotron_h", Targets(mamba_num_heads=3), "mamba_num_heads", "not a multiple of n_groups=2"),
    ("nemotron_h", Targets(mamba_num_heads=16), "mamba_num_heads", "larger"),
    (
        "nemotron_h",
        Targets(num_attention_heads=3),
        "num_attention_heads",
        "not a multiple of num_key_value_heads=2",
    ),
    ("nemotron_h", Targets(num_attention_heads=0), "num_attention_heads", "must be an integer >= 1"),
    ("nemotron_h", Targets(drop_layers=(6,)), "drop_layers", "layers 0..5"),
    ("nemotron_h", Targets(drop_layers=(1, 1)), "drop_layers", "distinct"),
    ("nemotron_h", Targets(num_layers=3, drop_layers=(1,)), "drop_layers", "not both"),
    ("llama", Targets(mamba_num_heads=2), "mamba_num_heads", "no layer this width belongs to"),
    ("llama", Targets(num_attention_heads=6), "num_attention_heads", "larger"),
]


@pytest.mark.parametrize(
    ("arch", "targets", "key", "why"), BAD, ids=[f"{b[0]}-{b[2]}-{b[3][:10]}" for b in BAD]
)
def test_bad_targets_name_their_key(arch, targets, key, why):
    model = ARCHS[arch]()
    imp = importance(model, batches(n=1))
    with pytest.raises(PosttrainError) as e:
        prune(model, targets, imp)
    assert str(e.value).startswith(f"prune.{key}: ") and why in str(e.value), str(e.value)
