"""The memory planner (``posttrain.compress.memory``): each component by hand for Nano 2 12B / 9B, a
Llama and a pure Mamba2; parameter counts equal to transformers' own models; the budget's closed form
as a property; and ``posttrain memory`` on the command line."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    Mamba2Config,
    Mamba2ForCausalLM,
    NemotronHConfig,
    NemotronHForCausalLM,
)

from posttrain.cli import main
from posttrain.compress.memory import (
    GIB,
    Arch,
    arch_from_hf,
    arch_from_model_config,
    gpu_budget_gib,
    param_count,
    plan_memory,
)
from posttrain.compress.memory_cli import MemoryConfig, load_arch
from posttrain.config.schema import ModelConfig

A10G = 22.06 * 0.95 - 1.3  # Nano 2's budget, 19.657 GiB
CTX = 131072
KEYS = {"model", "context", "batch", "dtype", "ssm_cache_dtype", "params", "weights_gib", "kv_cache_gib"}
KEYS |= {"mamba_state_gib", "total_gib", "budget_gib", "fits", "max_context_that_fits"}


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_a10g_budget_is_nano2s():
    assert gpu_budget_gib("a10g", 0.95, 1.3) == pytest.approx(19.657)
    assert round(MemoryConfig(model="m").budget(), 2) == 19.66


@pytest.mark.parametrize(
    ("name", "layers", "m", "mlp", "attn", "hidden", "ffn"),
    [
        ("nemotron_nano_12b_v2", 62, 28, 28, 6, 5120, 20480),
        ("nemotron_nano_9b_v2", 56, 27, 25, 4, 4480, 15680),
    ],
)
def test_shipped_nano2_configs(name, layers, m, mlp, attn, hidden, ffn):
    from posttrain.config.compose import compose

    cfg = compose([f"model={name}"]).model  # the schema accepts every field
    p = cfg.hybrid_override_pattern
    assert (len(p), p.count("M"), p.count("-"), p.count("*")) == (layers, m, mlp, attn)
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.kind, cfg.dtype) == (hidden, ffn, "hf", "bfloat16")
    assert cfg.path == "nvidia/NVIDIA-Nemotron-Nano-" + ("12B-v2" if layers == 62 else "9B-v2")
    a = load_arch(name)
    assert (a.mamba_num_heads * a.mamba_head_dim, a.n_groups, a.ssm_state_size, a.conv_kernel) == (
        10240,
        8,
        128,
        4,
    )
    assert (a.num_attention_heads, a.num_key_value_heads, a.head_dim, a.vocab_size) == (40, 8, 128, 131072)
    assert not a.tie_word_embeddings


def test_nano2_12b_by_hand():
    """The seed: the 12B's bf16 weights alone (~22.9 GiB) overflow the A10G's 19.66 GiB."""
    conv_dim = 10240 + 2 * 8 * 128
    mamba = 5120 * (2 * 10240 + 2 * 8 * 128 + 128) + conv_dim * 4 + conv_dim + 3 * 128 + 10240 + 10240 * 5120
    attn = 5120 * 40 * 128 + 2 * 5120 * 8 * 128 + 40 * 128 * 5120
    mlp = 2 * 5120 * 20480
    params = 2 * 131072 * 5120 + 28 * mamba + 6 * attn + 28 * mlp + 62 * 5120 + 5120
    assert params == 12_310_001_152
    p = plan_memory(load_arch("nemotron_nano_12b_v2"), context=CTX, batch=1, budget_gib=A10G)
    assert p.params == params
    assert p.weights_gib == params * 2 / GIB == pytest.approx(22.93, abs=0.005)
    assert p.weights_gib > 19.66
    assert p.kv_cache_gib == 2 * 6 * 8 * 128 * CTX * 2 / GIB == 3.0
    assert p.mamba_state_gib == 28 * (conv_dim * 4 * 2 + 128 * 80 * 128 * 4) / GIB
    assert p.total_gib == pytest.approx(p.weights_gib + 3.0 + p.mamba_state_gib)
    assert (p.fits, p.max_context_that_fits) == (False, 0)


def test_nano2_9b_by_hand():
    """The seed: the 9B fits the A10G at 128k context, batch 1."""
    conv_dim = 10240 + 2 * 8 * 128
    mamba = 4480 * (2 * 10240 + 2 * 8 * 128 + 128) + conv_dim * 4 + conv_dim + 3 * 128 + 10240 + 10240 * 4480
    attn = 4480 * 40 * 128 + 2 * 4480 * 8 * 128 + 40 * 128 * 4480
    mlp = 2 * 4480 * 15680
    params = 2 * 131072 * 4480 + 27 * mamba + 4 * attn + 25 * mlp + 56 * 4480 + 4480
    assert params == 8_888_227_328
    p = plan_memory(load_arch("nemotron_nano_9b_v2"), context=CTX, batch=1, budget_gib=A10G)
    assert p.params == params
    weights, state = params * 2, 27 * (conv_dim * 4 * 2 + 128 * 80 * 128 * 4)
    assert p.weights_gib == weights / GIB == pytest.approx(16.56, abs=0.005)
    assert p.kv_cache_gib == 2 * 4 * 8 * 128 * CTX * 2 / GIB == 2.0
    assert p.mamba_state_gib == state / GIB == pytest.approx(0.134, abs=0.001)
    assert p.total_gib == pytest.approx(18.69, abs=0.005)
    assert p.fits and p.total_gib < 19.66
    most = (math.floor(A10G * GIB) - weights - state) // (2 * 4 * 8 * 128 * 2)
    assert p.max_context_that_fits == most == 194_450


def test_pure_transformer_by_hand():
    """Llama-3-8B's shape: 8,030,261,248 parameters; 1 GiB of bf16 KV per 8k tokens; no Mamba state."""
    cfg = LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=14336,
        tie_word_embeddings=False,
    )
    layer = 4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336 + 2 * 4096
    assert 2 * 128256 * 4096 + 32 * layer + 4096 == 8_030_261_248
    p = plan_memory(arch_from_hf(cfg), context=8192, batch=2, budget_gib=24.0)
    assert p.params == 8_030_261_248
    assert p.kv_cache_gib == 2 * 32 * 8 * 128 * 8192 * 2 * 2 / GIB == 2.0
    assert p.mamba_state_gib == 0
    free = math.floor(24.0 * GIB) - 8_030_261_248 * 2
    assert p.max_context_that_fits == free // (2 * 32 * 8 * 128 * 2 * 2)


def test_pure_mamba_by_hand():
    """A Mamba2-2.7B-like stack: no KV cache, so memory does not grow with context."""
    cfg = Mamba2Config(
        vocab_size=50288,
        hidden_size=2560,
        num_heads=80,
        head_dim=64,
        expand=2,
        n_groups=1,
        state_size=128,
        num_hidden_layers=64,
        conv_kernel=4,
        tie_word_embeddings=True,
    )
    conv_dim = 5120 + 2 * 1 * 128
    block = 2560 * (2 * 5120 + 2 * 128 + 80) + conv_dim * 4 + conv_dim + 3 * 80 + 5120 + 5120 * 2560 + 2560
    a = arch_from_hf(cfg)
    p = plan_memory(a, context=CTX, batch=3, budget_gib=A10G)
    assert p.params == 50288 * 2560 + 64 * block + 2560
    assert p.kv_cache_gib == 0
    assert p.mamba_state_gib == 64 * 3 * (conv_dim * 4 * 2 + 80 * 64 * 128 * 4) / GIB
    assert p.fits and p.max_context_that_fits is None  # any context fits
    assert plan_memory(a, context=10**9, batch=3, budget_gib=A10G).total_gib == p.total_gib


NEMOTRON_H = dict(vocab_size=97, hidden_size=24, num_attention_heads=4, num_key_value_heads=2, head_dim=6)
NEMOTRON_H |= dict(intermediate_size=40, ssm_state_size=5, mamba_num_heads=4, mamba_head_dim=12, n_groups=2)


@pytest.mark.parametrize(
    "extra",
    [
        dict(hybrid_override_pattern="M-*M-*"),
        dict(hybrid_override_pattern="M-*", tie_word_embeddings=True, conv_kernel=3),
        dict(hybrid_override_pattern="MM-*", use_bias=True, use_conv_bias=False, mlp_bias=True),
        dict(hybrid_override_pattern="*-M", attention_bias=True),  # HF's NemotronH attention has no bias
        dict(hybrid_override_pattern="MMM"),
    ],
)
def test_params_equal_transformers_nemotron_h(extra):
    cfg = NemotronHConfig(**NEMOTRON_H, **extra)
    with torch.device("meta"):
        model = NemotronHForCausalLM(cfg)
    assert param_count(arch_from_hf(cfg)) == numel(model)


@pytest.mark.parametrize(
    "extra",
    [
        dict(),
        dict(tie_word_embeddings=True, head_dim=4),
        dict(attention_bias=True, mlp_bias=True, num_key_value_heads=4),
    ],
)
def test_params_equal_transformers_llama(extra):
    base = dict(vocab_size=97, hidden_size=24, num_hidden_layers=3, num_attention_heads=4)
    cfg = LlamaConfig(**{**base, "num_key_value_heads": 2, "intermediate_size": 40, **extra})
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    assert param_count(arch_from_hf(cfg)) == numel(model)


@pytest.mark.parametrize("tied", [True, False])
def test_params_equal_transformers_mamba2(tied):
    cfg = Mamba2Config(
        vocab_size=97, hidden_size=24, num_heads=4, head_dim=12, n_groups=2, state_size=5, num_hidden_layers=3,
        conv_kernel=3, use_bias=tied, tie_word_embeddings=tied,
    )  # fmt: skip
    with torch.device("meta"):
        model = Mamba2ForCausalLM(cfg)
    assert param_count(arch_from_hf(cfg)) == numel(model)


def test_params_equal_the_tiny_model_config():
    """``ModelConfig`` as ``build_tiny_model`` turns it into a NemotronHConfig (vocab: the config's)."""
    mc = ModelConfig()
    names = ("vocab_size", "hidden_size", "hybrid_override_pattern", "num_attention_heads", "head_dim")
    names += (
        "num_key_value_heads",
        "intermediate_size",
        "ssm_state_size",
        "mamba_num_heads",
        "mamba_head_dim",
    )
    names += ("n_groups", "chunk_size", "max_position_embeddings", "tie_word_embeddings")
    cfg = NemotronHConfig(**{k: getattr(mc, k) for k in names})
    with torch.device("meta"):
        model = NemotronHForCausalLM(cfg)
    assert param_count(arch_from_model_config(mc)) == numel(model)
    assert param_count(load_arch("tiny_nemotron_h")) == numel(model)


archs = st.builds(
    Arch,
    pattern=st.text(alphabet="M*-", min_size=1, max_size=8),
    hidden_size=st.integers(1, 64),
    vocab_size=st.integers(1, 512),
    tie_word_embeddings=st.booleans(),
    num_attention_heads=st.integers(1, 8),
    num_key_value_heads=st.integers(1, 8),
    head_dim=st.integers(1, 64),
    intermediate_size=st.integers(1, 128),
    gated_mlp=st.booleans(),
    mamba_num_heads=st.integers(1, 8),
    mamba_head_dim=st.integers(1, 32),
    n_groups=st.integers(1, 4),
    ssm_state_size=st.integers(1, 32),
    conv_kernel=st.integers(2, 4),
)
dtypes = st.sampled_from(["float32", "bfloat16", "float16"])


@settings(max_examples=150, deadline=None)
@given(
    a=archs,
    context=st.integers(0, 10**6),
    more=st.integers(0, 10**5),
    batch=st.integers(1, 8),
    budget=st.floats(1e-4, 0.1),
    dtype=dtypes,
    ssm=dtypes,
)
def test_total_is_monotone_and_max_context_is_the_largest_that_fits(
    a, context, more, batch, budget, dtype, ssm
):
    """Granularity: one token. fits(context) is exactly context <= max_context_that_fits."""

    def plan(ctx: int, b: int = batch):
        return plan_memory(a, context=ctx, batch=b, budget_gib=budget, dtype=dtype, ssm_cache_dtype=ssm)

    p = plan(context)
    assert plan(context + more).total_gib >= p.total_gib
    assert plan(context, batch + 1).total_gib >= p.total_gib
    assert p.total_gib == pytest.approx(p.weights_gib + p.kv_cache_gib + p.mamba_state_gib)
    most = p.max_context_that_fits
    if most is None:
        assert "*" not in a.pattern and plan(0).fits and plan(10**9).fits
    else:
        assert p.fits == (context <= most)
        assert not plan(most + 1).fits
        assert plan(most).fits or most == 0  # 0: not even the weights and Mamba state fit


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["memory", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_json(capsys):
    rc, out, _ = run_cli(
        capsys, "model=nemotron_nano_9b_v2", "context=131072", "batch=1", "gpu=a10g", "json=true"
    )
    got = json.loads(out)
    assert rc == 0 and set(got) == KEYS
    assert (got["model"], got["context"], got["batch"], got["fits"]) == ("nemotron_nano_9b_v2", CTX, 1, True)
    assert (got["dtype"], got["ssm_cache_dtype"], got["budget_gib"]) == ("bfloat16", "float32", 19.657)
    rc, out, _ = run_cli(capsys, "model=nemotron_nano_12b_v2", "--json", "budget_gib=80")
    got = json.loads(out)
    assert rc == 0 and got["fits"] and got["budget_gib"] == 80 and got["max_context_that_fits"] > CTX


def test_cli_table_and_help(capsys):
    rc, out, _ = run_cli(capsys, "model=nemotron_nano_12b_v2")
    assert rc == 0 and "component" in out and "does NOT fit" in out and "22.929" in out
    rc, out, _ = run_cli(capsys, "--help")
    assert rc == 0 and all(f.metadata["help"] in out for f in fields(MemoryConfig))


def test_cli_local_checkpoint_dir(capsys, tmp_path):
    cfg = NemotronHConfig(**NEMOTRON_H, hybrid_override_pattern="M-*")
    cfg.save_pretrained(tmp_path)
    rc, out, _ = run_cli(capsys, f"model={tmp_path}", "context=16", "json=true")
    assert rc == 0 and json.loads(out)["params"] == param_count(arch_from_hf(cfg))


@pytest.mark.parametrize(
    ("args", "key", "says"),
    [
        (["model=no_such_model"], "model", "not a shipped model config"),
        (["model=smollm2_135m"], "model", "no architecture fields"),  # a GGUF: plan its HF import instead
        (["model=hf"], "model", "no architecture fields"),
        (["model=nemotron_nano_9b_v2", "dtype=fp7"], "dtype", "unknown dtype 'fp7'"),
        (["model=nemotron_nano_9b_v2", "ssm_cache_dtype=int3"], "ssm_cache_dtype", "unknown dtype"),
        (["model=nemotron_nano_9b_v2", "context=-1"], "context", "must be >= 0"),
        (["model=nemotron_nano_9b_v2", "batch=0"], "batch", "must be >= 1"),
        (["model=nemotron_nano_9b_v2", "gpu=b200"], "gpu", "budget_gib="),
        (["model=nemotron_nano_9b_v2", "context=lots"], "context", ""),
        (["model=nemotron_nano_9b_v2", "contxt=5"], "contxt", ""),
        (["context=5"], "model", "required"),
    ],
)
def test_bad_input_is_one_line_naming_the_key(capsys, args, key, says):
    rc, out, err = run_cli(capsys, *args)
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert f"{key}:" in err and says in err, err


def test_dir_without_config_json(capsys, tmp_path):
    rc, _, err = run_cli(capsys, f"model={tmp_path}")
    assert rc == 2 and "model:" in err and "config.json" in err and err.count("\n") == 1


def test_an_hf_config_of_the_9b_plans_like_the_shipped_yaml(tmp_path):
    """The 9B's config.json fields (as NemotronHConfig saves them) give the shipped config's numbers."""
    yaml = load_arch("nemotron_nano_9b_v2")
    keys = ("hidden_size", "vocab_size", "num_attention_heads", "num_key_value_heads", "head_dim")
    keys += ("intermediate_size", "mamba_num_heads", "mamba_head_dim", "n_groups", "ssm_state_size")
    NemotronHConfig(
        hybrid_override_pattern=yaml.pattern, **{k: getattr(yaml, k) for k in keys}
    ).save_pretrained(tmp_path)
    assert load_arch(str(tmp_path)) == yaml
