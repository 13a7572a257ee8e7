"""Every malformed record in ``bad_records.CASES``, between two good rows of its format:
``on_error=raise`` stops with ``file:2: field: reason`` and writes nothing; ``on_error=skip`` keeps it
in ``rejects.jsonl``, counts it, and keeps both good rows (nothing is dropped silently)."""

from __future__ import annotations

import json

import pytest
from bad_records import CASES, NEMOTRON, good, line

from data_recipes.build import build_recipe
from data_recipes.config import RecipeConfig, SourceConfig
from data_recipes.errors import DataError

NO_SPLITS = {"train": 1.0, "validation": 0.0, "test": 0.0}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))


def source(tmp_path, name: str) -> tuple[str, SourceConfig]:
    fmt, record = CASES[name][:2]
    path = tmp_path / f"{name}.jsonl"
    path.write_text(
        "\n".join([line(good(fmt, 1)), line(record), line(good(fmt, 3))]) + "\n", encoding="utf-8"
    )
    return str(path), SourceConfig(path=str(path), format=fmt)


def recipe(src: SourceConfig, on_error: str) -> RecipeConfig:
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


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40 and len(set(CASES)) == len(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_raise_names_file_line_field_reason(name, tokenizer, cache, tmp_path):
    path, src = source(tmp_path, name)
    field, reason = CASES[name][2:]
    with pytest.raises(DataError) as e:
        build_recipe(recipe(src, "raise"), tmp_path / "out", tokenizer=tokenizer)
    assert (e.value.where, e.value.field) == (f"{path}:2", field)
    assert reason in e.value.reason, e.value.reason
    assert str(e.value) == f"{path}:2: {field}: {e.value.reason}" and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(CASES))
def test_skip_keeps_and_counts_the_reject(name, tokenizer, cache, tmp_path):
    path, src = source(tmp_path, name)
    field, reason = CASES[name][2:]
    m = build_recipe(recipe(src, "skip"), tmp_path / "out", tokenizer=tokenizer)
    rejects = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["where"], r["field"]) for r in rejects] == [(f"{path}:2", field)]
    assert reason in rejects[0]["reason"] and rejects[0]["raw"]
    assert m["rejected"] == {"count": 1, "path": "rejects.jsonl", "by_field": {field: 1}}
    assert m["counts"]["total"] == 2 and m["mixture"]["sampled"]["source:0"]["rejected"] == 1


def test_one_file_with_every_bad_nemotron_record(tokenizer, cache, tmp_path):
    """Bad rows interleaved with good ones: each reject has its own line; kept + rejected = lines."""
    names = sorted(NEMOTRON)
    rows = []
    for i, name in enumerate(names):
        rows += [line(good("nemotron", 100 + i)), line(NEMOTRON[name][0])]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    src = SourceConfig(path=str(path), take="all")
    m = build_recipe(recipe(src, "skip"), tmp_path / "out", tokenizer=tokenizer)
    rejects = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [r["where"] for r in rejects] == [f"{path}:{2 * (i + 1)}" for i in range(len(names))]
    assert [r["field"] for r in rejects] == [NEMOTRON[n][1] for n in names]
    assert m["counts"]["total"] == len(names) and m["rejected"]["count"] == len(names)
    assert (m["dropped"]["dedup"]["exact"], m["dropped"]["dedup"]["normalized"]) == (0, 0)
