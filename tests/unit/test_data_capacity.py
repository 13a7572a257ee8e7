"""Generator capacity: the small builds are unchanged, and larger requests stay distinct and verifiable.

* golden: the first samples of the default recipe (every domain at its ``allocate(2000, ...)`` count,
  the size of the reported ``nano2_tiny``/``nano2_smollm`` builds) hash to what they were before the
  generators were widened (sha256 of the JSON, sorted keys);
* capacity: ``N`` samples of code, safety, tools and chat are >= 96 % distinct by
  ``(reasoning, prompt_key)`` (what dedup keeps), and a random subset passes its verifier.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from data_recipes.config import RecipeConfig
from data_recipes.domains import get
from data_recipes.mixture import allocate

# Recorded on the generators before widening (commit 9252c3c).
GOLDEN = {
    "chat": "007eba3f70cab6e9e6fbaa3527635054cb9e41df1451495fd362ebf7f7137210",
    "code": "864147d546548d79d036416bb6e7f67471db3faf2f3d343b5ed337579bcab231",
    "math": "cac8f7df555d757c4225141d6e36bee17767ba54a87251b7824b66fc587130b5",
    "safety": "93e5964f359a9abad5c25d0ad7d4d668074164d6f20c78bd387687ef8b1da5b0",
    "tool_calling": "c48e6130afcc4aec338e33aa7aadfb1114ca11c56d7170e82343b55d9c265e5c",
}


@pytest.mark.parametrize("domain", sorted(GOLDEN))
def test_small_build_samples_unchanged(domain: str) -> None:
    cfg = RecipeConfig()
    n = allocate(2000, cfg.domains)[domain]
    rows = get(domain).generate(cfg, list(range(n)))
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    assert digest == GOLDEN[domain], f"{domain}: the first {n} samples changed"


N = 4000  # per domain: generation of all four takes ~3 s
CHECKED = {
    "code": 3,
    "safety": 150,
    "tool_calling": 150,
    "chat": 60,
}  # code: a sandbox (~0.3 s); chat: langdetect
EOS = "<SPECIAL_12>"


def _completion_text(tok, sample: dict, turn: dict) -> str:
    """Text the model must generate after the RL prompt for ``turn`` (as in test_data_verifiers)."""
    from data_recipes.views import rl_row

    row = rl_row(sample)
    head = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(row["prompt"] + [turn], tokenize=False)
    return full[len(head) :].rstrip("\n").removesuffix(EOS)


@pytest.mark.parametrize("domain", sorted(CHECKED))
def test_widened_samples_are_distinct_and_verifiable(domain: str, tokenizer) -> None:
    import random

    from data_recipes.transforms.dedup import prompt_key
    from data_recipes.transforms.reasoning import apply_flag
    from data_recipes.views import completion, rl_row
    from posttrain import rewards

    rows = [
        apply_flag(s) for s in get(domain).generate(RecipeConfig(name="capacity", seed=5), list(range(N)))
    ]
    distinct = len({(s["reasoning"], prompt_key(s)) for s in rows})
    assert distinct >= 0.96 * N, f"{domain}: {distinct} distinct prompts of {N}"
    rng = random.Random(domain)
    subset = rng.sample(rows[2000:], CHECKED[domain] // 2) + rng.sample(
        rows, CHECKED[domain] - CHECKED[domain] // 2
    )
    for s in subset:  # half from the widened indices, half from anywhere
        meta = rl_row(s)["metadata"]
        good = rewards.score(domain, meta, _completion_text(tokenizer, s, completion(s)[0]), s["reasoning"])
        assert good == 1.0, (s["uuid"], s["messages"][1:])
        bad_turn = get(domain).corrupt(s, random.Random(0))
        assert rewards.score(domain, meta, _completion_text(tokenizer, s, bad_turn), s["reasoning"]) < 1.0, (
            bad_turn
        )


def test_widened_code_tasks_reject_their_family_bug() -> None:
    """In-process (no sandbox): widened tasks pass their tests and their family bug fails them."""
    from data_recipes.domains import code

    for s in code.generate(RecipeConfig(seed=5), list(range(1134, 1134 + 400))):
        name, tests = s["metadata"]["entry_point"], s["metadata"]["tests"]
        ref = s["messages"][-1]["content"].removeprefix("```python\n").removesuffix("```")
        bad = code.corrupt(s, None)["content"].removeprefix("```python\n").removesuffix("```")
        assert not code._fails(ref, name, tests), s["messages"][-1]["content"]
        assert code._fails(bad, name, tests) and "return None" not in bad, bad
