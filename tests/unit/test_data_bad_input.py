"""Malformed input: ``on_error=raise`` stops before writing with ``file:line``, field and reason;
``on_error=skip`` writes the reject to ``rejects.jsonl`` and counts it in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_recipes.build import build_recipe
from data_recipes.config import RecipeConfig, SourceConfig
from data_recipes.errors import DataError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "data"
# fixture -> (field, reason fragment); the bad record is always on line 2, between two good ones
CASES = {
    "bad_invalid_json.jsonl": ("<json>", "invalid JSON"),
    "bad_missing_messages.jsonl": ("messages", "missing required field"),
    "bad_unknown_role.jsonl": ("messages[1].role", "unknown role 'robot'"),
    "bad_assistant_first.jsonl": ("messages[1].role", "first turn must be user"),
    "bad_empty_content.jsonl": ("messages[1].content", "empty content"),
    "bad_reasoning_value.jsonl": ("reasoning", "must be 'on' or 'off'"),
    "bad_tool_arguments.jsonl": ("messages[2].tool_calls[0].function.arguments", "not valid JSON"),
    "bad_non_utf8.jsonl": ("<line>", "invalid UTF-8"),
    "bad_too_long.jsonl": ("messages", "tokens > max_length 512"),
}
NO_SPLITS = {"train": 1.0, "validation": 0.0, "test": 0.0}  # two good rows are too few to split


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def recipe(name: str, on_error: str) -> RecipeConfig:
    src = SourceConfig(path=str(FIX / name), format="nemotron")
    return RecipeConfig(
        name="bad",
        total=10,
        domains={},
        sources=[src],
        on_error=on_error,
        decontaminate=False,
        off_fraction=0.0,
        truncate_fraction=0.0,
        splits=NO_SPLITS,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_raise_stops_before_writing(name, tokenizer, cache, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DataError) as e:
        build_recipe(recipe(name, "raise"), out, tokenizer=tokenizer)
    field, reason = CASES[name]
    assert e.value.where == f"{FIX / name}:2"
    assert e.value.field == field and reason in e.value.reason
    assert str(e.value) == f"{FIX / name}:2: {field}: {e.value.reason}" and "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    assert not (cache / "data").exists() or not any((cache / "data").iterdir())


@pytest.mark.parametrize("name", sorted(CASES))
def test_skip_writes_rejects_and_counts_them(name, tokenizer, cache, tmp_path):
    out = tmp_path / "out"
    m = build_recipe(recipe(name, "skip"), out, tokenizer=tokenizer)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    field, reason = CASES[name]
    assert len(rejects) == 1 and rejects[0]["where"] == f"{FIX / name}:2"
    assert rejects[0]["field"] == field and reason in rejects[0]["reason"]
    assert m["rejected"] == {"count": 1, "path": "rejects.jsonl", "by_field": {field: 1}}
    assert m["counts"]["total"] == 2  # the two good rows around it
    assert json.loads((out / "manifest.json").read_text())["rejected"]["count"] == 1


def test_skip_keeps_going_over_many_bad_files(tokenizer, cache, tmp_path):
    srcs = [SourceConfig(path=str(FIX / n), format="nemotron") for n in sorted(CASES)]
    cfg = RecipeConfig(
        name="many",
        total=100,
        domains={},
        sources=srcs,
        on_error="skip",
        decontaminate=False,
        splits=NO_SPLITS,
    )
    m = build_recipe(cfg, tmp_path / "out", tokenizer=tokenizer)
    # every file has the same two good rows, so dedup drops the copies: counted, not silent
    assert m["rejected"]["count"] == len(CASES)
    assert (
        m["counts"]["total"] - m["off_pairs"] + sum(m["dropped"]["dedup"][k] for k in ("exact", "normalized"))
        == 18
    )


def test_missing_source_file(tokenizer, cache, tmp_path):
    cfg = RecipeConfig(
        name="x", total=5, domains={}, sources=[SourceConfig(path=str(tmp_path / "nope.jsonl"))]
    )
    with pytest.raises(DataError, match="no such file"):
        build_recipe(cfg, tmp_path / "out", tokenizer=tokenizer)


def test_hub_id_offline_is_a_clear_error(tokenizer, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = RecipeConfig(
        name="x",
        total=5,
        domains={},
        sources=[SourceConfig(path="nvidia/Nemotron-Post-Training-Dataset-v1", split="math")],
    )
    with pytest.raises(DataError, match="offline"):
        build_recipe(cfg, tmp_path / "out", tokenizer=tokenizer)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"off_fraction": 1.5}, "off_fraction"),
        ({"truncate_budget": [9, 3]}, "truncate_budget"),
        ({"splits": {"train": 0.5, "validation": 0.1, "test": 0.1}}, "splits"),
        ({"on_error": "ignore"}, "on_error"),
        ({"domains": {"poetry": 1.0}}, "domains"),
    ],
)
def test_bad_recipe_fields_fail_at_construction(kwargs, field):
    with pytest.raises(DataError) as e:
        RecipeConfig(**kwargs)
    assert e.value.field == field
