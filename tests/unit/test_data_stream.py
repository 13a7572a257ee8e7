"""The streaming build: same checks and files as the in-memory build, any process count, bounded input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_from_disk

from data_recipes import stream
from data_recipes.build import build_recipe
from data_recipes.config import RecipeConfig, SourceConfig
from data_recipes.errors import DataError
from data_recipes.fingerprint import content_hash
from data_recipes.schema import normalise_text, prompt_text

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "data"
SPLITS = ("train", "validation", "test")


def recipe(**kw) -> RecipeConfig:
    srcs = [SourceConfig(path=str(FIX / "good.jsonl"), take="all")]
    base = dict(
        name="stream", total=400, sources=srcs, off_fraction=0.1, truncate_fraction=0.05, streaming=True
    )
    return RecipeConfig(**{**base, **kw})


def rows(out: Path, split: str) -> list[dict]:
    return [json.loads(x) for x in (out / "samples" / f"{split}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def built(tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSTTRAIN_CACHE", str(root / "cache"))
        mp.setattr(stream, "CHUNK", 64)  # several chunks, so order and windows are exercised
        m = build_recipe(recipe(), root / "s", tokenizer=tokenizer)
        m2 = build_recipe(recipe(num_proc=2), root / "s2", tokenizer=tokenizer, force=True)
        base = build_recipe(recipe(streaming=False), root / "m", tokenizer=tokenizer)
    return root, m, m2, base


def test_manifest_counts_match_files_and_views(built):
    root, m, _, _ = built
    got = {sp: rows(root / "s", sp) for sp in SPLITS}
    assert m["counts"]["by_split"] == {sp: len(got[sp]) for sp in SPLITS}
    assert m["counts"]["total"] == sum(map(len, got.values()))
    assert m["off_pairs"] == sum("paired_with" in r["metadata"] for sp in SPLITS for r in got[sp]) > 0
    assert (
        m["counts"]["truncated"] == sum("truncated_at" in r["metadata"] for sp in SPLITS for r in got[sp]) > 0
    )
    for view in ("sft", "preference", "rl"):
        dd = load_from_disk(str(root / "s" / view))
        assert {sp: len(dd[sp]) for sp in SPLITS} == m["views"][view]
    sft = load_from_disk(str(root / "s" / "sft"))["train"]
    assert sft["uuid"] == [r["uuid"] for r in got["train"]]  # the view rows are exactly the kept rows


def test_splits_are_prompt_disjoint(built):
    root, m, _, _ = built
    where: dict[str, set] = {}
    for sp in SPLITS:
        for r in rows(root / "s", sp):
            where.setdefault(normalise_text(prompt_text(r)), set()).add(sp)
    assert all(len(v) == 1 for v in where.values())
    assert sum(m["prompts_by_split"].values()) == len(where)


def test_two_processes_write_identical_files(built):
    root, m, m2, _ = built
    assert m2["fingerprint"] == m["fingerprint"] and m2["counts"] == m["counts"]
    assert content_hash(root / "s2") == content_hash(root / "s")  # views and state.json too
    for sp in SPLITS:
        assert (root / "s2" / "samples" / f"{sp}.jsonl").read_bytes() == (
            root / "s" / "samples" / f"{sp}.jsonl"
        ).read_bytes()


def test_keeps_the_same_rows_as_the_in_memory_build(built):
    """Dedup and decontamination are first-occurrence rules over the same order: same originals kept."""
    root, m, _, base = built

    def originals(out):
        return {r["uuid"] for sp in SPLITS for r in rows(out, sp) if "paired_with" not in r["metadata"]}

    assert originals(root / "s") == originals(root / "m")
    assert m["dropped"]["dedup"]["exact"] + m["dropped"]["dedup"]["normalized"] == (
        base["dropped"]["dedup"]["exact"] + base["dropped"]["dedup"]["normalized"]
    )


def test_bad_rows_are_kept_as_rejects_or_raise(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "mixed.jsonl"
    good = (FIX / "good.jsonl").read_text().splitlines()
    bad.write_text("\n".join([good[0], "{not json", good[1], '{"uuid": "x"}']) + "\n")
    src = [SourceConfig(path=str(bad), take="all")]
    m = build_recipe(recipe(sources=src, on_error="skip"), tmp_path / "o", tokenizer=tokenizer)
    rej = [json.loads(x) for x in (tmp_path / "o" / "rejects.jsonl").read_text().splitlines()]
    assert m["rejected"]["count"] == len(rej) == 2
    assert {r["where"].rsplit(":", 1)[1] for r in rej} == {"2", "4"}
    with pytest.raises(DataError, match=r"mixed.jsonl:2"):
        build_recipe(recipe(sources=src), tmp_path / "o2", tokenizer=tokenizer)


def test_a_weighted_source_share_is_refused_before_work(tokenizer, tmp_path):
    src = [SourceConfig(path=str(FIX / "good.jsonl"))]
    with pytest.raises(DataError, match=r"sources\[0\]\.take"):
        build_recipe(recipe(sources=src), tmp_path / "o", tokenizer=tokenizer)


def test_an_empty_source_file_is_an_error_naming_it(tokenizer, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty.jsonl.*empty file"):
        build_recipe(
            recipe(sources=[SourceConfig(path=str(empty), take="all")]), tmp_path / "o", tokenizer=tokenizer
        )
