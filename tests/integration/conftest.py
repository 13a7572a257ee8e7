"""Tiny fixtures for stage tests: an initial checkpoint and hand-made data views."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict


def arithmetic_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b, on = rng.randint(0, 50), rng.randint(0, 50), i % 3 != 0
        msgs = [
            {"role": "system", "content": "/think" if on else "/no_think", "reasoning_content": None},
            {"role": "user", "content": f"What is {a}+{b}?", "reasoning_content": None},
            {
                "role": "assistant",
                "content": f"\\boxed{{{a + b}}}",
                "reasoning_content": f"{a} plus {b} is {a + b}." if on else None,
            },
        ]
        rows.append(
            {
                "messages": msgs,
                "category": "math",
                "reasoning": "on" if on else "off",
                "truncated": False,
                "uuid": str(i),
            }
        )
    return rows


@pytest.fixture(scope="session")
def init_ckpt(tmp_path_factory, tiny) -> str:
    from posttrain.models import save_checkpoint

    model, tok = tiny
    return str(save_checkpoint(model, tok, tmp_path_factory.mktemp("init") / "checkpoint"))


@pytest.fixture(scope="session")
def sft_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    ds = Dataset.from_list(arithmetic_rows(200))
    DatasetDict(train=ds, validation=ds.select(range(16)), test=ds.select(range(16))).save_to_disk(
        str(root / "sft")
    )
    return root
