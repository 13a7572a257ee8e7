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


@pytest.fixture(scope="session")
def eval_stage(tmp_path_factory):
    """``eval_stage(checkpoint, stage_dir, **settings)`` runs the eval stage (``modes=[budget]`` and the
    budget sweep by default) on four held-out prompts (math and chat, one ``/no_think``) and returns
    ``(StageOutputs, budget.json, samples)``."""
    import json

    from datasets import Dataset, DatasetDict
    from omegaconf import OmegaConf

    from posttrain.config.stages import EvalStageConfig
    from posttrain.stages.base import StageInputs
    from posttrain.stages.eval import run

    data = tmp_path_factory.mktemp("eval_data")
    chat = {"constraints": [{"kind": "max_words", "value": 50}]}
    prompts = [("math", "What is 2+3?", {"answer": "5"}), ("chat", "Say hi.", chat),
               ("math", "What is 3*4? /no_think", {"answer": "12"}),
               ("chat", "What is the capital of France?", chat)]  # fmt: skip
    rows = [
        {
            "uuid": f"u{i}",
            "category": c,
            "prompt": [{"role": "user", "content": q}],
            "metadata": json.dumps(m),
        }
        for i, (c, q, m) in enumerate(prompts)
    ]
    DatasetDict(test=Dataset.from_list(rows)).save_to_disk(str(data / "rl"))

    def run_eval(checkpoint, stage_dir, **settings):
        base = {"max_new_tokens": 32, "batch_size": 4, "modes": ["budget"], "budget_tokens": 3}
        # B=24 + grace 5: the tiny model's trace for the capital question ends at its newline (token 27)
        base |= {"sweep_budgets": [0, 2, 24, None], "sweep_grace": 5}
        cfg = OmegaConf.structured(EvalStageConfig(**(base | settings)))
        stage_dir.mkdir(parents=True)
        out = run(
            cfg, StageInputs(name="eval", stage_dir=stage_dir, checkpoint=str(checkpoint), data_dir=data)
        )
        sweep = json.loads((stage_dir / "budget" / "budget.json").read_text())
        samples = [json.loads(ln) for ln in (stage_dir / "samples.jsonl").read_text().splitlines()]
        return out, sweep, samples

    return run_eval
