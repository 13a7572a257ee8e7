"""Models and tokenizers: the tiny NemotronH, the built-in tokenizer, and HF checkpoint loading."""

from posttrain.models.factory import (
    build_tiny_model,
    check_checkpoint,
    load_model,
    load_tokenizer,
    save_checkpoint,
)
from posttrain.models.initial import initial_checkpoint
from posttrain.models.template import install_nano2
from posttrain.models.tokenizer import build_tokenizer, chat_template

__all__ = [
    "build_tiny_model",
    "build_tokenizer",
    "chat_template",
    "check_checkpoint",
    "initial_checkpoint",
    "install_nano2",
    "load_model",
    "load_tokenizer",
    "save_checkpoint",
]
