"""Prune targets and their checks, shared by plan building and the stage at run time (same messages);
the distill stage's vocabulary check, likewise.

What is checked, and why:

- every target is an integer >= 1 (``drop_layers``: distinct indices) and no larger than the model;
  ``num_layers`` and ``drop_layers`` exclude each other, and at least one layer stays;
- ``mamba_num_heads`` is a multiple of ``n_groups``: heads are kept per group, the same count in each
  group, so B/C stay shared by the same heads and ``n_groups`` still divides the heads;
- ``num_attention_heads`` is a multiple of ``num_key_value_heads``: query heads are kept evenly within
  each KV group (the KV heads stay);
- nothing is required of ``hidden_size`` or ``intermediate_size`` beyond the range: the attention and
  Mamba head dims stay fixed (Llama's ``head_dim`` is written out explicitly), so the hidden width is a
  plain channel count that no head size has to divide;
- a width target for a mixer the model does not have (``mamba_num_heads`` on Llama) is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from posttrain import PosttrainError

WIDTHS = ("hidden_size", "intermediate_size", "mamba_num_heads", "num_attention_heads")
DEPTH_METHODS = ("block", "logit_mse")
INIT = "init"  # posttrain.pipeline.plan.INIT, the starting checkpoint's stage name


@dataclass(frozen=True)
class Sizes:
    """What a target is checked against; 0 marks a mixer the model does not have."""

    layers: int
    hidden_size: int
    intermediate_size: int = 0
    mamba_num_heads: int = 0
    n_groups: int = 1
    num_attention_heads: int = 0
    num_key_value_heads: int = 0


def sizes_of(config: Any) -> Sizes:
    """A transformers config (NemotronH or Llama), read without weights."""
    from posttrain.compress.layout import family, layer_letters

    letters = layer_letters(config)
    has = set(letters)
    llama = family(config) == "llama"
    return Sizes(
        layers=len(letters),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size if llama or "-" in has else 0,
        mamba_num_heads=config.mamba_num_heads if "M" in has else 0,
        n_groups=1 if llama else config.n_groups,
        num_attention_heads=config.num_attention_heads if llama or "*" in has else 0,
        num_key_value_heads=config.num_key_value_heads if llama or "*" in has else 0,
    )


def sizes_of_model_config(cfg: Any) -> Sizes:
    """A tiny ``ModelConfig``: the NemotronH that ``build_tiny_model`` builds from it."""
    from transformers import NemotronHConfig

    keys = ("hidden_size", "intermediate_size", "mamba_num_heads", "n_groups", "num_attention_heads")
    kw = {k: cfg[k] for k in keys} | {"num_key_value_heads": cfg.num_key_value_heads}
    return sizes_of(NemotronHConfig(hybrid_override_pattern=cfg.hybrid_override_pattern, **kw))


@dataclass(frozen=True)
class Targets:
    """What to keep; None (or no ``drop_layers``) leaves that axis as it is."""

    num_layers: int | None = None
    drop_layers: tuple[int, ...] = ()
    hidden_size: int | None = None
    intermediate_size: int | None = None
    mamba_num_heads: int | None = None
    num_attention_heads: int | None = None

    @classmethod
    def from_cfg(cls, cfg: Any) -> Targets:
        kw = {f.name: cfg[f.name] for f in fields(cls)}
        return cls(**(kw | {"drop_layers": tuple(kw["drop_layers"] or ())}))


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def target_errors(t: Targets, s: Sizes | None) -> list[tuple[str, str]]:
    """``(key, reason)`` for each bad target; the model checks only when ``s`` is known."""
    bad = [
        k for k in ("num_layers", *WIDTHS) if (v := getattr(t, k)) is not None and not (_int(v) and v >= 1)
    ]
    out = [(k, f"must be an integer >= 1, got {getattr(t, k)!r}") for k in bad]
    drop = list(t.drop_layers)
    if not all(_int(i) and i >= 0 for i in drop) or len(set(drop)) != len(drop):
        out.append(("drop_layers", f"must be distinct layer indices >= 0, got {drop}"))
    if drop and t.num_layers is not None:
        out.append(("drop_layers", "set num_layers or drop_layers, not both"))
    if out or s is None:
        return out
    if t.num_layers is not None and t.num_layers > s.layers:
        out.append(("num_layers", f"{t.num_layers} is larger than the model's {s.layers} layers"))
    if drop and (max(drop) >= s.layers or len(drop) >= s.layers):
        out.append(("drop_layers", f"{drop}: the model has layers 0..{s.layers - 1} and must keep one"))
    for key, size in [(k, getattr(s, k)) for k in WIDTHS]:
        v = getattr(t, key)
        if v is None:
            continue
        if size == 0:
            out.append((key, "the model has no layer this width belongs to"))
        elif v > size:
            out.append((key, f"{v} is larger than the model's {key} {size}"))
    if t.mamba_num_heads is not None and s.mamba_num_heads and t.mamba_num_heads % s.n_groups:
        out.append(
            (
                "mamba_num_heads",
                f"{t.mamba_num_heads} is not a multiple of n_groups={s.n_groups} (heads are kept per group)",
            )
        )
    kv = s.num_key_value_heads
    if t.num_attention_heads is not None and s.num_attention_heads and t.num_attention_heads % kv:
        out.append(
            (
                "num_attention_heads",
                f"{t.num_attention_heads} is not a multiple of num_key_value_heads={kv} (query heads are kept per KV group)",
            )
        )
    return out


def raise_first(errors: list[tuple[str, str]], where: str) -> None:
    for key, why in errors:
        raise PosttrainError(f"{where}.{key}: {why}")


def _local_config(ref: str):
    """A local checkpoint's transformers config (no weights); None when it is not local or unreadable
    here (the stage checks again once it has loaded the model)."""
    path = Path(ref).expanduser()
    if not (path / "config.json").is_file():
        return None
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError, KeyError):
        return None


def source_of(ref: str, stages: dict[str, tuple[str, str]], *, stop: tuple[str, ...] = ()) -> str | None:
    """Follow ``ref`` back through earlier stages to ``init`` or an external path. ``stages``: name ->
    (kind, input). None when a stage of a kind in ``stop`` (one that changes what is asked) or a cycle
    is on the way."""
    seen = set()
    while ref in stages and ref not in seen:
        seen.add(ref)
        kind, ref = stages[ref]
        if kind in stop:
            return None
    return None if ref in stages else ref


def input_sizes(ref: str, stages: dict[str, tuple[str, str]], model_cfg: Any) -> Sizes | None:
    """The sizes of the model a stage reads, when known before anything runs: ``init`` (a tiny model's
    config, a local HF checkpoint's, or a hub model's fields when ``describes_path``), a local path, or an earlier stage that keeps the architecture
    (followed back to its input). None: known only at run time."""
    ref = source_of(ref, stages, stop=("prune",))
    if ref == INIT:
        if model_cfg.kind == "tiny":
            return sizes_of_model_config(model_cfg)
        ref = model_cfg.path if model_cfg.kind == "hf" and model_cfg.path else None
        config = _local_config(ref) if ref else None
        if config is None and ref and model_cfg.get("describes_path"):  # a hub id, described offline
            return sizes_of_model_config(model_cfg)
        return sizes_of(config) if config is not None else None
    config = _local_config(ref) if ref else None
    return sizes_of(config) if config is not None else None


def input_vocab(ref: str, stages: dict[str, tuple[str, str]], model_cfg: Any) -> int | None:
    """The vocabulary size of the model a stage reads, from a local ``config.json`` (no stage kind
    changes the vocabulary; ``init`` is known for ``kind=hf`` with the native template only, since
    ``nano2`` adds tokens). None: known only at run time."""
    ref = source_of(ref, stages)
    if ref == INIT:
        native = model_cfg.kind == "hf" and model_cfg.path and model_cfg.chat_template == "native"
        ref = model_cfg.path if native else None
    config = _local_config(ref) if ref else None
    return config.get_text_config().vocab_size if config is not None else None


def vocab_error(stage: str, teacher: int, student: int) -> str | None:
    """The distill stage's vocabulary check (plan time and run time): the KL compares full next-token
    distributions, so the teacher's vocabulary must be the student's."""
    if teacher == student:
        return None
    return (
        f"stage.{stage}.teacher: the teacher's vocabulary has {teacher} tokens but the input model's has "
        f"{student}; forward KL over logits needs the same vocabulary"
    )
