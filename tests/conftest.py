"""Shared fixtures: offline, quiet, a private cache, and the tiny model + tokenizer."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# No per-example deadline: tests never assert wall-clock times, and a loaded 2-core machine makes a
# 200 ms deadline fail at random (seen on test_cap_rows_keeps_data_order_within_caps_and_round_robins).
settings.register_profile("posttrain", deadline=None)
settings.load_profile("posttrain")


@pytest.fixture(scope="session")
def tokenizer():
    from posttrain.models import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny(tokenizer):
    from posttrain.config.schema import ModelConfig
    from posttrain.models import build_tiny_model

    return build_tiny_model(ModelConfig(), tokenizer=tokenizer)
