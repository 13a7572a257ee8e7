"""Structure a build must never train on or write silently: think blocks, empty sources, empty
splits, and what ``take`` samples from a source."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bad_records import good, line
from datasets import load_from_disk
from hypothesis import given
from hypothesis import strategies as st

from data_recipes.build import build_recipe
from data_recipes.config import RecipeConfig, SourceConfig
from data_recipes.errors import DataError
from data_recipes.schema import THINK_CLOSE, THINK_OPEN, validate_message

NO_SPLITS = {"train": 1.0, "validation": 0.0, "test": 0.0}
text = st.text(st.sampled_from("ab \n<>/kinth"), max_size=12)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))


def assistant(content: str, reasoning: str | None = None) -> dict:
    return validate_message(
        {"role": "assistant", "content": content, "reasoning_content": reasoning}, "f:1", "m"
    )


@given(text.filter(lambda t: THINK_OPEN not in t and THINK_CLOSE not in t), text)
def test_one_leading_think_block_is_split_off(trace, answer):
    answer = answer.replace(THINK_OPEN, "").replace(THINK_CLOSE, "")
    if not answer.strip():
        answer = "x"
    m = assistant(f"{THINK_OPEN}\n{trace}\n{THINK_CLOSE}\n\n{answer}")
    assert m["reasoning_content"] == (trace or None) and THINK_OPEN not in m["content"]
    assert THINK_CLOSE not in m["content"] and m["content"].strip() == answer.strip()


@given(st.lists(st.sampled_from([THINK_OPEN, THINK_CLOSE, "a", "\n"]), max_size=8))
def test_any_other_think_structure_is_rejected(parts):
    """Accepted iff the tags are exactly one leading open/close pair; then no tag survives anywhere."""
    content = "".join(parts) + "answer"
    tags = [p for p in parts if p in (THINK_OPEN, THINK_CLOSE)]
    lead = "".join(parts).lstrip()
    well_formed = tags in ([], [THINK_OPEN, THINK_CLOSE]) and (not tags or lead.startswith(THINK_OPEN))
    try:
        m = assistant(content)
    except DataError as e:
        assert not well_formed and e.field == "m.content"
    else:
        assert well_formed
        assert all(
            THINK_OPEN not in (v or "") and THINK_CLOSE not in (v or "")
            for v in m.values()
            if isinstance(v, str)
        )


def recipe(*sources: SourceConfig, **kw) -> RecipeConfig:
    base = dict(
        name="s",
        total=10,
        domains={},
        sources=list(sources),
        decontaminate=False,
        off_fraction=0.0,
        truncate_fraction=0.0,
        splits=NO_SPLITS,
    )
    return RecipeConfig(**{**base, **kw})


@pytest.mark.parametrize("body", ["", "\n\n  \n"])
@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_empty_source_file_is_a_one_line_error(body, on_error, tokenizer, cache, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text(body)
    with pytest.raises(DataError) as e:
        build_recipe(
            recipe(SourceConfig(path=str(path)), on_error=on_error), tmp_path / "out", tokenizer=tokenizer
        )
    assert str(e.value) == f"{path}: sources.path: empty file: no records"
    assert not (tmp_path / "out").exists()


def test_directory_without_data_files(tokenizer, cache, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"d: sources.path: no .jsonl/.json/.parquet files"):
        build_recipe(recipe(SourceConfig(path=str(tmp_path / "d"))), tmp_path / "out", tokenizer=tokenizer)


def write_rows(path, n: int, fmt: str = "nemotron", start: int = 0) -> str:
    path.write_text("".join(line(good(fmt, start + i)) + "\n" for i in range(n)), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_empty_split_fails_before_writing_and_says_how_to_fix(split, tokenizer, cache, tmp_path):
    splits = {"train": 0.9, "validation": 0.0, "test": 0.0} | {split: 0.1}
    cfg = recipe(SourceConfig(path=write_rows(tmp_path / "a.jsonl", 3)), splits=splits)
    with pytest.raises(DataError) as e:
        build_recipe(cfg, tmp_path / "out", tokenizer=tokenizer)
    assert e.value.field == f"splits.{split}" and "0 of 3 prompts" in e.value.reason
    assert f"set splits.{split}=0" in e.value.reason and not (tmp_path / "out").exists()


def test_zero_fraction_splits_are_written_empty_and_loadable(tokenizer, cache, tmp_path):
    m = build_recipe(
        recipe(SourceConfig(path=write_rows(tmp_path / "a.jsonl", 3))), tmp_path / "out", tokenizer=tokenizer
    )
    for view in ("sft", "preference", "rl"):
        dd = load_from_disk(str(tmp_path / "out" / view))
        assert {sp: len(dd[sp]) for sp in dd} == m["views"][view]
    assert m["views"]["sft"] == {"train": 3, "validation": 0, "test": 0} and m["views"]["rl"]["train"] == 0


@pytest.mark.parametrize(("take", "expect"), [("all", 7), (3, 3), (20, 7), (0, 0)])
def test_take_overrides_the_share_of_total(take, expect, tokenizer, cache, tmp_path):
    """total=2 would give this source 2 rows by weight; `take` asks for all of them, or N."""
    path = write_rows(tmp_path / "a.jsonl", 7)
    share = SourceConfig(path=write_rows(tmp_path / "b.jsonl", 5, "openai", start=100), format="openai")
    cfg = recipe(SourceConfig(path=path, take=take), share, total=2)
    m = build_recipe(cfg, tmp_path / "out", tokenizer=tokenizer)
    got = m["mixture"]["sampled"]
    assert got["source:0"] == {"path": path, "take": take, "read": 7, "rejected": 0, "taken": expect}
    assert got["source:1"]["take"] == "share" and got["source:1"]["taken"] == 2
    assert m["mixture"]["target"] == {"source:1": 2} and m["counts"]["total"] == expect + 2


@pytest.mark.parametrize("take", ["most", -1, 2.5, True])
def test_bad_take_fails_at_construction(take):
    with pytest.raises(DataError) as e:
        SourceConfig(path="x.jsonl", take=take)
    assert e.value.field == "sources.take"


def test_parquet_rows_are_named_file_row(tokenizer, cache, tmp_path):
    rows = [good("openai", 1), {"messages": [{"role": "robot", "content": "x"}]}, good("openai", 3)]
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DataError) as e:
        build_recipe(
            recipe(SourceConfig(path=str(path), format="openai")), tmp_path / "o", tokenizer=tokenizer
        )
    assert (e.value.where, e.value.field) == (f"{path}:2", "messages[0].role")
    m = build_recipe(
        recipe(SourceConfig(path=str(path), format="openai"), on_error="skip"),
        tmp_path / "o",
        tokenizer=tokenizer,
    )
    assert m["rejected"]["count"] == 1 and m["counts"]["total"] == 2
