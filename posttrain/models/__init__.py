"""Models and tokenizers: the tiny NemotronH, the built-in tokenizer, and HF checkpoint loading.

The names are resolved on first use (PEP 562), so importing one submodule (``tokenizer`` for
``data build``, ``packing``) does not import the NemotronH modeling code (~4.5 s on this machine).
"""

from __future__ import annotations

import importlib

_HOME = {
    "build_tiny_model": "factory",
    "check_checkpoint": "factory",
    "load_model": "factory",
    "load_tokenizer": "factory",
    "save_checkpoint": "factory",
    "initial_checkpoint": "initial",
    "install_nano2": "template",
    "build_tokenizer": "tokenizer",
    "chat_template": "tokenizer",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value
