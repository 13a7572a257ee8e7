"""Build the tiny NemotronH, and load/save plain HF checkpoints.

The same two loaders (`load_model`, `load_tokenizer`) serve local directories and hub ids, so the
tests exercise exactly the code path a user hits with a real model. Errors a user can fix (missing
path, unreadable tokenizer, hub id while offline) raise `PosttrainError` with one clear line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, NemotronHConfig, NemotronHForCausalLM

from posttrain import PosttrainError
from posttrain.models.tokenizer import build_tokenizer

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise PosttrainError(f"model.dtype: unknown dtype {name!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[name]


def build_tiny_model(cfg: Any, tokenizer=None) -> tuple[NemotronHForCausalLM, Any]:
    """A randomly initialised NemotronH (pure-torch Mamba2 path) and the built-in tokenizer.

    ``cfg`` is a ``ModelConfig``; the embedding covers the tokenizer's full vocabulary (base BPE
    plus the added think/tool tokens).
    """
    tok = tokenizer if tokenizer is not None else build_tokenizer(vocab_size=cfg.vocab_size)
    config = NemotronHConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        hybrid_override_pattern=cfg.hybrid_override_pattern,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        head_dim=cfg.head_dim,
        intermediate_size=cfg.intermediate_size,
        ssm_state_size=cfg.ssm_state_size,
        mamba_num_heads=cfg.mamba_num_heads,
        mamba_head_dim=cfg.mamba_head_dim,
        n_groups=cfg.n_groups,
        chunk_size=cfg.chunk_size,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(cfg.seed)
    model = NemotronHForCausalLM(config).to(_dtype(cfg.dtype))
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model, tok


def check_checkpoint(ref: str, *, what: str = "model.path") -> None:
    """Fail fast with one line if ``ref`` cannot be a loadable checkpoint here."""
    if not ref:
        raise PosttrainError(f"{what}: no checkpoint given; set {what}=<local dir or hub id>")
    path = Path(ref).expanduser()
    if path.exists() or ref.startswith(("/", ".", "~")):
        if not path.is_dir():
            raise PosttrainError(f"{what}: checkpoint directory {path} does not exist")
        if not (path / "config.json").exists():
            raise PosttrainError(f"{what}: {path} has no config.json; it is not a complete HF checkpoint")
        has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
        if not has_weights:
            raise PosttrainError(
                f"{what}: {path} has no weight files (*.safetensors); the save is incomplete"
            )
        return
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise PosttrainError(
            f"{what}: {ref!r} is not a local directory and would need the hub, but HF_HUB_OFFLINE=1; "
            "download it first or point it at a local checkpoint"
        )


def load_tokenizer(ref: str, *, trust_remote_code: bool = False, what: str = "model.path"):
    """Load a tokenizer and require a chat template (posttrain's stages render every sample with it)."""
    if not Path(ref).expanduser().is_dir():
        check_checkpoint(ref, what=what)
    try:
        tok = AutoTokenizer.from_pretrained(str(Path(ref).expanduser()), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise PosttrainError(
            f"{what}: cannot read a tokenizer from {ref}: {str(e).splitlines()[0]}"
        ) from None
    if not tok.chat_template:
        raise PosttrainError(f"{what}: tokenizer at {ref} has no chat template; posttrain needs one")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    ref: str, *, dtype: str = "float32", trust_remote_code: bool = False, what: str = "model.path"
):
    """Load a causal LM from a local checkpoint or hub id (``trust_remote_code`` off by default)."""
    check_checkpoint(ref, what=what)
    try:
        return AutoModelForCausalLM.from_pretrained(
            str(Path(ref).expanduser()), dtype=_dtype(dtype), trust_remote_code=trust_remote_code
        )
    except OSError as e:
        raise PosttrainError(f"{what}: cannot load a model from {ref}: {str(e).splitlines()[0]}") from None


def save_checkpoint(model, tokenizer, out: str | os.PathLike) -> Path:
    """Save a plain HF checkpoint (safetensors + config + tokenizer + chat template) atomically.

    Writes into a temporary sibling directory and renames it into place, so a crash never leaves a
    half-written ``out`` that looks complete.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(tmp)
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)
    return out
