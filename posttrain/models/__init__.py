"""Models and tokenizers: the tiny NemotronH, the built-in tokenizer, and HF checkpoint loading."""

from posttrain.models.factory import (
    build_tiny_model,
    check_checkpoint,
    load_model,
    load_tokenizer,
    save_checkpoint,
)
from posttrain.models.tokenizer import build_tokenizer, chat_template

__all__ = [
    "build_tiny_model",
    "build_tokenizer",
    "chat_template",
    "check_checkpoint",
    "load_model",
    "load_tokenizer",
    "save_checkpoint",
]
