"""Fingerprint: stable for equal inputs; changes with every recipe field that can change the output."""

from __future__ import annotations

import dataclasses

import pytest

from data_recipes.config import RecipeConfig, SourceConfig
from data_recipes.fingerprint import NON_SEMANTIC, recipe_fingerprint

CHANGES = {
    "name": "other",
    "seed": 1,
    "total": 7,
    "streaming": True,
    "domains": {"math": 1.0},
    "off_fraction": 0.2,
    "off_working": ["math"],
    "truncate_fraction": 0.3,
    "truncate_budget": [4, 9],
    "splits": {"train": 0.8, "validation": 0.1, "test": 0.1},
    "max_length": 300,
    "decontaminate": False,
    "ngram": 8,
    "on_error": "skip",
    "tokenizer": "/some/where",
    "math_tasks": {"chain_sum": {"weight": 1.0}},
    "math_place_value": True,
    "decontam_sets": [],
    "dedup": False,
    "code_tests": 4,
    "tool_multi_fraction": 0.5,
    "safety_harmful_fraction": 0.2,
    "chat_max_constraints": 3,
}


def test_every_field_is_covered_by_this_test():
    fields = {f.name for f in dataclasses.fields(RecipeConfig)}
    assert fields == set(CHANGES) | {"sources"} | NON_SEMANTIC


def test_equal_inputs_equal_fingerprints(tokenizer):
    assert recipe_fingerprint(RecipeConfig(), tokenizer) == recipe_fingerprint(RecipeConfig(), tokenizer)


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_any_field_changes_it(field, tokenizer):
    base = recipe_fingerprint(RecipeConfig(), tokenizer)
    assert (
        recipe_fingerprint(dataclasses.replace(RecipeConfig(), **{field: CHANGES[field]}), tokenizer) != base
    )


def test_sources_and_their_content_change_it(tokenizer, tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("{}\n")
    with_src = RecipeConfig(sources=[SourceConfig(path=str(path))])
    a = recipe_fingerprint(with_src, tokenizer)
    assert a != recipe_fingerprint(RecipeConfig(), tokenizer)
    assert a != recipe_fingerprint(
        RecipeConfig(sources=[SourceConfig(path=str(path), weight=2.0)]), tokenizer
    )
    path.write_text("{}\n{}\n")
    assert recipe_fingerprint(with_src, tokenizer) != a


def test_num_proc_does_not_change_it(tokenizer):
    assert recipe_fingerprint(RecipeConfig(num_proc=2), tokenizer) == recipe_fingerprint(
        RecipeConfig(), tokenizer
    )


def test_tokenizer_and_template_change_it(tokenizer):
    import copy

    base = recipe_fingerprint(RecipeConfig(), tokenizer)
    other = copy.deepcopy(tokenizer)
    other.chat_template = tokenizer.chat_template + " "
    assert recipe_fingerprint(RecipeConfig(), other) != base
    other = copy.deepcopy(tokenizer)
    other.add_tokens(["<new_token>"])
    assert recipe_fingerprint(RecipeConfig(), other) != base


def _fake_build(root, rows: str):
    for view in ("sft", "preference", "rl"):
        (root / view / "train").mkdir(parents=True)
        (root / view / "train" / "data.arrow").write_text(f"{view}:{rows}")
    (root / "chat_template.jinja").write_text("{{ messages }}")
    (root / "manifest.json").write_text('{"versions": {"code": "a"}}')
    return root


def test_content_hash_ignores_the_manifest_but_not_the_rows(tmp_path):
    from data_recipes.fingerprint import content_hash

    a = _fake_build(tmp_path / "a", "rows")
    b = _fake_build(tmp_path / "b", "rows")
    (b / "manifest.json").write_text('{"versions": {"code": "b"}}')  # other code, same output
    (b / "rejects.jsonl").write_text("")
    (b / "rl" / "train" / "cache-0123abcd.arrow").write_text("written by a stage's .filter()")
    assert content_hash(a) == content_hash(b)
    (b / "rl" / "train" / "data.arrow").write_text("rl:other rows")
    assert content_hash(a) != content_hash(b)
    (b / "rl" / "train" / "data.arrow").write_text("rl:rows")
    (b / "chat_template.jinja").write_text("{{ other }}")
    assert content_hash(a) != content_hash(b)
    (b / "chat_template.jinja").write_text("{{ messages }}")
    (b / "sft" / "train" / "data.arrow").rename(b / "sft" / "train" / "moved.arrow")
    assert content_hash(a) != content_hash(b)
