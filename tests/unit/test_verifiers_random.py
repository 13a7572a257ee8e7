"""Random text earns no reward: property tests over random strings, and an untrained model's generations.

Metadata comes from the real generated data (the domain builders, through the RL view). Random text is
arbitrary unicode, printable ASCII, "words" of random letters, and random token ids of the built-in tokenizer
decoded (what an untrained model emits). Also here: the lm-eval IFEval mapping and the real-prose gate.
"""

from __future__ import annotations

import collections
import json
import string
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_recipes.config import RecipeConfig
from data_recipes.domains import get
from data_recipes.transforms.reasoning import apply_flag
from data_recipes.views import rl_row
from posttrain import rewards
from posttrain.rewards import instructions
from posttrain.rewards._util import is_plausible_prose, prose_problems

RANDOM = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
N = {"chat": 48, "safety": 32, "math": 12, "tool_calling": 24}


@pytest.fixture(scope="module")
def metas() -> dict[str, list[dict]]:
    cfg = RecipeConfig(name="random-text", seed=7)
    out = {
        d: [rl_row(apply_flag(s))["metadata"] for s in get(d).generate(cfg, list(range(n)))]
        for d, n in N.items()
    }
    out["tool_calling"].append(
        {"expected_calls": [], "tools": []}
    )  # no call expected: text alone must not pass
    return out


unicode_text = st.text(max_size=300)
ascii_text = st.text(alphabet=string.printable, max_size=300)
letter_salad = st.lists(st.from_regex(r"[A-Za-z]{1,10}[.,!?]?", fullmatch=True), max_size=40).map(" ".join)
random_text = st.one_of(unicode_text, ascii_text, letter_salad)


@pytest.mark.parametrize("category", sorted(N))
@RANDOM
@given(text=random_text, ids=st.lists(st.integers(0, 4200), max_size=64), pick=st.integers(0, 10**6))
def test_random_text_scores_zero(
    metas, tokenizer, category: str, text: str, ids: list[int], pick: int
) -> None:
    meta = metas[category][pick % len(metas[category])]
    salad = tokenizer.decode([i % len(tokenizer) for i in ids], skip_special_tokens=True)
    for t in (text, salad):
        assert rewards.score(category, meta, t, "off") == 0.0, (t, meta)
        assert rewards.score(category, meta, f"hmm\n</think>\n{t}", "on") == 0.0, (t, meta)


def test_reference_answers_are_plausible_prose() -> None:
    for seed in (0, 3):
        cfg = RecipeConfig(seed=seed)
        for d in ("chat", "safety"):
            for s in get(d).generate(cfg, list(range(300))):
                text = s["messages"][-1]["content"]
                assert not prose_problems(text), (text, prose_problems(text))


def test_chat_uses_lm_eval_semantics() -> None:
    prose = "Cats sleep for most of the day and purr."
    assert instructions.check(prose, {"kind": "exclude_keywords", "value": ["cat"]})  # whole words only
    assert not instructions.check(prose, {"kind": "exclude_keywords", "value": ["CATS"]})
    assert instructions.check("It is a dog-friendly cafe.", {"kind": "max_words", "value": 6})  # \w+ words
    assert not instructions.check("It is a dog-friendly cafe.", {"kind": "max_words", "value": 5})
    assert instructions.check("Note:\n* one\n-two\n** bold", {"kind": "num_bullets", "value": 2})
    assert instructions.check('"Bye now."', {"kind": "end_with", "value": "bye now."})  # quotes stripped
    assert instructions.check("a (b) c", {"kind": "include_keywords", "value": ["(b)"]})  # literal, not regex
    # langdetect reads all-caps English as German, so IFEval's english_capital is not used for uppercase
    caps = "GARDENING STARTS WITH GOOD SOIL. PLANTS NEED WATER AND SUNLIGHT."
    assert not rewards.ifeval.follows("change_case:english_capital", caps)
    assert instructions.check(caps, {"kind": "uppercase"})
    assert not instructions.check("123.", {"kind": "uppercase"})


def test_chat_needs_real_prose_and_topic() -> None:
    meta = {"constraints": [{"kind": "no_commas"}]}
    assert instructions.score("The moon circles the Earth. Its light is reflected sunlight.", meta) == 1.0
    junk = ["", "zq xv kk pl", "desiredelComp lauauIC neededionggmdir", "a a a a a.", "\u4e00\u4e8c " * 9]
    for text in junk:
        assert instructions.score(text, meta) == 0.0, text
        assert not is_plausible_prose(text)
    topical = {**meta, "topic": "the moon"}
    assert instructions.score("The moon circles the Earth. It is bright.", topical) == 1.0
    assert instructions.score("Bees collect nectar from the flowers.", topical) == 0.0
    assert instructions.on_topic("A bee hums.", "bees") and instructions.on_topic(
        "Bicycle lanes.", "bicycles"
    )
    assert not instructions.on_topic("Cars honk loudly.", "bicycles")


def test_lm_eval_ifeval_loads_offline_without_download() -> None:
    """Importing lm-eval's IFEval module never calls ``nltk.download`` (it would need the network)."""
    code = (
        "import nltk\n"
        "def refuse(*a, **k):\n    raise SystemExit('nltk.download called')\n"
        "nltk.download = refuse\n"
        "from posttrain.rewards import ifeval\n"
        "ids = set(ifeval.registry())\n"
        "assert set(ifeval.USED) <= ids, ids\n"
        "assert ifeval.follows('punctuation:no_comma', 'no commas here')\n"
        "assert nltk.download is refuse\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "punkt" not in out.stdout + out.stderr


# --------------------------------------------------------------------------------------- untrained model
CATEGORIES = ("chat", "code", "math", "safety", "tool_calling")


@pytest.fixture(scope="module")
def rl_prompts(tokenizer, tmp_path_factory) -> dict[str, list[dict]]:
    from datasets import load_from_disk

    from data_recipes.build import build_recipe

    root = tmp_path_factory.mktemp("random-model")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSTTRAIN_CACHE", str(root / "cache"))
        build_recipe(RecipeConfig(name="random-model", total=200), root / "out", tokenizer=tokenizer)
    rl = load_from_disk(str(root / "out" / "rl"))
    by: dict[str, list[dict]] = collections.defaultdict(list)
    for split in ("test", "train"):
        for row in rl[split]:
            if len(by[row["category"]]) < 8:
                by[row["category"]].append(row)
    assert {c: len(by[c]) for c in CATEGORIES} == dict.fromkeys(CATEGORIES, 8)
    return by


def test_untrained_model_scores_near_zero(tiny, rl_prompts) -> None:
    """A randomly initialised model, greedy, 48 new tokens, /think and /no_think: mean score <= 0.05."""
    from posttrain.inference.generate import generate_texts, render_prompts, with_reasoning_mode

    model, tok = tiny
    rows = [r for c in CATEGORIES for r in rl_prompts[c]]
    scores: dict[str, list[float]] = collections.defaultdict(list)
    for mode in ("on", "off"):
        texts = render_prompts(tok, [with_reasoning_mode(r["prompt"], mode) for r in rows])
        outs = generate_texts(model, tok, texts, max_new_tokens=48, batch_size=len(texts))
        for row, (text,) in zip(rows, outs):
            scores[row["category"]].append(rewards.score(row["category"], row["metadata"], text, mode))
    means = {c: sum(v) / len(v) for c, v in scores.items()}
    assert set(means) == set(CATEGORIES) and all(len(v) == 16 for v in scores.values())
    assert all(m <= 0.05 for m in means.values()), json.dumps(means)
