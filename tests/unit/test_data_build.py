"""End to end: build a small recipe, check the layout, manifest, views (through TRL), cache and parallelism."""

from __future__ import annotations

import gc
import json
import time
from collections import Counter
from pathlib import Path

import pytest
from datasets import load_from_disk

from data_recipes import parallel
from data_recipes.build import as_config, build_recipe
from data_recipes.config import RecipeConfig, SourceConfig
from data_recipes.inspect import render_inspect
from data_recipes.schema import normalise_text, prompt_text

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "data"
SPLITS = ("train", "validation", "test")
COLUMNS = {
    "sft": {"messages", "tools", "category", "reasoning", "truncated", "uuid"},
    "rl": {"prompt", "category", "reasoning", "metadata", "uuid"},
    "preference": {"prompt", "chosen", "rejected", "tools", "category", "reasoning", "metadata", "uuid"},
}


def recipe(**kw) -> RecipeConfig:
    srcs = [
        SourceConfig(path=str(FIX / "good.jsonl"), weight=0.01),
        SourceConfig(path=str(FIX / "preference.jsonl"), format="preference", weight=0.005),
    ]
    base = dict(name="test", total=400, sources=srcs, off_fraction=0.1, truncate_fraction=0.05)
    return RecipeConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def built(tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSTTRAIN_CACHE", str(root / "cache"))
        t0 = time.time()
        manifest = build_recipe(recipe(), root / "out", tokenizer=tokenizer)
        yield root, manifest, time.time() - t0


def samples(out: Path, split: str) -> list[dict]:
    return [json.loads(x) for x in (out / "samples" / f"{split}.jsonl").read_text().splitlines()]


def test_layout_and_columns(built):
    root, m, _ = built
    out = root / "out"
    assert {p.name for p in out.iterdir()} >= {
        "manifest.json",
        "rejects.jsonl",
        "samples",
        "sft",
        "preference",
        "rl",
    }
    for view, cols in COLUMNS.items():
        dd = load_from_disk(str(out / view))
        assert set(dd) == set(SPLITS)
        assert set(dd["train"].column_names) == cols
        assert m["views"][view] == {sp: len(dd[sp]) for sp in SPLITS}
    assert json.loads((out / "manifest.json").read_text()) == m


def test_manifest_counts_match_the_data(built):
    root, m, _ = built
    rows = [s for sp in SPLITS for s in samples(root / "out", sp)]
    c = m["counts"]
    assert c["total"] == len(rows) == sum(m["views"]["sft"].values())
    assert c["by_category"] == dict(Counter(s["category"] for s in rows))
    assert c["by_reasoning"] == dict(Counter(s["reasoning"] for s in rows))
    assert c["truncated"] == sum("truncated_at" in s["metadata"] for s in rows) == m["truncation"]["count"]
    assert m["rejected"] == {"count": 0, "path": "rejects.jsonl", "by_field": {}}
    assert set(m["token_lengths"]["sample"]) == {"p50", "p90", "p99", "max", "mean"}
    assert m["token_lengths"]["sample"]["max"] <= 512 and len(m["fingerprint"]) == 16
    assert "human_eval" in m["dropped"]["decontam"] and "exact" in m["dropped"]["dedup"]


def test_mixture_shares_off_and_truncated_within_tolerance(built):
    root, m, _ = built
    rows = [s for sp in SPLITS for s in samples(root / "out", sp)]
    on = [s for s in rows if s["reasoning"] == "on"]
    weights = RecipeConfig().domains
    for cat, w in weights.items():
        share = sum(s["category"] == cat and s["generator"].startswith("posttrain/") for s in on) / len(on)
        assert abs(share - w / sum(weights.values())) < 0.03, cat
    assert (
        m["off_pairs"]
        == round(0.1 * len(on))
        == sum(s["reasoning"] == "off" and "paired_with" in s["metadata"] for s in rows)
    )
    assert m["counts"]["truncated"] == round(0.05 * len(on))


def test_no_prompt_in_two_splits(built):
    root, _, _ = built
    seen: dict[str, str] = {}
    for sp in SPLITS:
        for s in samples(root / "out", sp):
            key = normalise_text(prompt_text(s))
            assert seen.setdefault(key, sp) == sp


def test_off_rows_render_empty_think_and_truncated_rows_close_think(built, tokenizer):
    root, _, _ = built
    sft = load_from_disk(str(root / "out" / "sft"))["train"]
    n_off = n_cut = 0
    for row in sft:
        tools = json.loads(row["tools"]) if row["tools"] else None
        text = tokenizer.apply_chat_template(row["messages"], tools=tools, tokenize=False)
        turns = text.split("<SPECIAL_11>Assistant\n")[1:]
        if row["reasoning"] == "off":
            n_off += 1
            assert all(t.startswith("<think></think>") for t in turns)
        else:
            assert all(t.startswith("<think>\n") and "\n</think>\n" in t for t in turns)
        if row["truncated"]:
            n_cut += 1
            cut = [m["reasoning_content"] for m in row["messages"] if m["role"] == "assistant"]
            assert any(f"<think>\n{c}\n</think>\n" in text for c in cut if c)
    assert n_off > 0 and n_cut > 0


def test_sft_view_through_trl_keeps_tools(built, tiny, tmp_path):
    from trl import SFTConfig, SFTTrainer

    root, _, _ = built
    model, tok = tiny
    sft = load_from_disk(str(root / "out" / "sft"))["train"]
    tool_rows = [i for i, c in enumerate(sft["category"]) if c == "tool_calling"][:4]
    ds = sft.select(tool_rows + list(range(4))).select_columns(["messages", "tools"])
    args = SFTConfig(
        output_dir=str(tmp_path),
        max_length=512,
        assistant_only_loss=True,
        use_cpu=True,
        bf16=False,
        report_to=[],
        packing=False,
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    for j, row in enumerate(trainer.train_dataset):
        text = tok.decode(row["input_ids"])
        assert ("<AVAILABLE_TOOLS>" in text) == (ds[j]["tools"] is not None)
        trained = tok.decode([t for t, lab in zip(row["input_ids"], row["labels"]) if lab != -100])
        assert trained and -100 in row["labels"]  # assistant-only loss through the generation tags
        assert "<AVAILABLE_TOOLS>" not in trained and "User" not in trained
        if ds[j]["tools"] is not None:
            assert "<TOOLCALL>[" in trained


def test_rl_view_prompts_embed_tools_like_the_template(built, tokenizer):
    root, _, _ = built
    rl = load_from_disk(str(root / "out" / "rl"))["train"]
    sft = {r["uuid"]: r for r in load_from_disk(str(root / "out" / "sft"))["train"]}
    checked = 0
    for row in rl:
        meta = json.loads(row["metadata"])
        assert row["prompt"][-1]["role"] == "user" and row["category"] in {
            "math",
            "code",
            "tool_calling",
            "safety",
            "chat",
        }
        if row["category"] == "tool_calling" and "tools" in meta:
            src = sft[row["uuid"]]
            n = len(row["prompt"])
            via_arg = tokenizer.apply_chat_template(
                src["messages"][:n],
                tools=json.loads(src["tools"]),
                tokenize=False,
                add_generation_prompt=True,
            )
            via_sys = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
            assert via_arg == via_sys
            checked += 1
    assert checked > 0


def test_preference_view_pairs_differ(built):
    root, _, _ = built
    pref = load_from_disk(str(root / "out" / "preference"))["train"]
    assert len(pref) > 0
    for row in pref:
        assert row["prompt"][-1]["role"] == "user" and row["chosen"] != row["rejected"]
        assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    every = [r for sp in SPLITS for r in load_from_disk(str(root / "out" / "preference"))[sp]]
    src = [r for r in every if r["prompt"][-1]["content"] == "What is 3 + 4?"]  # from the preference source
    assert len(src) == 1 and src[0]["rejected"][0]["content"] == "The answer is \\boxed{8}"


def test_second_build_is_cached_and_other_dir_copies(built, tokenizer, tmp_path, monkeypatch):
    root, m, first = built
    monkeypatch.setenv("POSTTRAIN_CACHE", str(root / "cache"))
    mtime = (root / "out" / "manifest.json").stat().st_mtime_ns
    again = build_recipe(recipe(), root / "out", tokenizer=tokenizer)
    assert again == m  # a cache hit: the output was not rewritten (no wall-clock assertion: flaky under load)
    assert (root / "out" / "manifest.json").stat().st_mtime_ns == mtime
    other = build_recipe(recipe(), tmp_path / "copy", tokenizer=tokenizer)
    assert other == m and (root / "cache" / "data" / m["fingerprint"] / "manifest.json").exists()
    assert (tmp_path / "copy" / "samples" / "train.jsonl").read_bytes() == (
        root / "out" / "samples" / "train.jsonl"
    ).read_bytes()


def test_output_is_identical_for_two_processes(built, tokenizer, tmp_path, monkeypatch):
    root, m, _ = built
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(parallel, "_CHUNK", 32)  # small chunks so datasets.map(num_proc=2) really runs
    m2 = build_recipe(recipe(num_proc=2), tmp_path / "out2", tokenizer=tokenizer, force=True)
    assert m2["fingerprint"] == m["fingerprint"] and m2["counts"] == m["counts"]
    for sp in SPLITS:
        a = (root / "out" / "samples" / f"{sp}.jsonl").read_bytes()
        assert (tmp_path / "out2" / "samples" / f"{sp}.jsonl").read_bytes() == a


def test_inspect_shows_counts_and_each_kind(built):
    root, m, _ = built
    text = render_inspect(root / "out", n=1)
    for part in (
        "fingerprint",
        "by category",
        "reasoning ON",
        "reasoning OFF",
        "truncated thinking",
        "tool calling",
        "preference pair",
        "RL prompt",
        "<think></think>",
        "<AVAILABLE_TOOLS>",
        "<TOOLCALL>",
    ):
        assert part in text, part
    assert str(m["counts"]["total"]) in text


def test_recipe_yamls_compose_to_recipe_configs():
    from omegaconf import OmegaConf

    from posttrain.cli import compose

    node = compose(["data=nano2_tiny"]).data
    tiny = OmegaConf.to_object(node)
    expected = RecipeConfig(truncate_fraction=0.25, truncate_budget=[1, 32])  # the tiny-scale departure
    assert isinstance(tiny, RecipeConfig) and tiny == expected == as_config(node)
    full = OmegaConf.to_object(compose(["data=nano2"]).data)
    assert isinstance(full, RecipeConfig) and full.name == "nano2" and full.truncate_budget == [1024, 2048]
    assert all(isinstance(s, SourceConfig) for s in full.sources) and len(full.sources) == 9
    assert {s.path for s in full.sources} == {f"nvidia/Nemotron-Post-Training-Dataset-v{v}" for v in (1, 2)}


def test_preference_view_through_trl_dpo(built, tiny, tmp_path):
    import copy

    from trl import DPOConfig, DPOTrainer

    root, _, _ = built
    model, tok = tiny
    pref = load_from_disk(str(root / "out" / "preference"))["train"]
    rows = [i for i, c in enumerate(pref["category"]) if c == "tool_calling"][:2] + list(range(3))
    ds = pref.select(rows).select_columns(["prompt", "chosen", "rejected", "tools"])
    args = DPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], max_length=512)
    trainer = DPOTrainer(
        model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=ds, processing_class=tok
    )
    for j, row in enumerate(trainer.train_dataset):
        prompt, chosen = tok.decode(row["prompt_ids"]), tok.decode(row["chosen_ids"])
        assert ("<AVAILABLE_TOOLS>" in prompt) == (ds[j]["tools"] is not None)
        assert row["chosen_ids"] != row["rejected_ids"] and chosen.rstrip().endswith("<SPECIAL_12>")
        if ds[j]["tools"] is not None:
            assert "<TOOLCALL>[" in chosen


def test_unloadable_tokenizer_and_missing_build_are_data_errors(tmp_path):
    from data_recipes.build import load_tokenizer
    from data_recipes.errors import DataError

    with pytest.raises(DataError, match="tokenizer"):
        load_tokenizer(RecipeConfig(tokenizer=str(tmp_path / "no-tokenizer-here")))
    with pytest.raises(DataError, match="no data build"):
        render_inspect(tmp_path)


def test_build_leaves_the_gc_as_it_found_it(tokenizer, tmp_path, monkeypatch):
    """The build freezes the heap and raises the GC threshold, then restores both; a caller's frozen
    objects stay frozen."""
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    threshold = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    build_recipe(recipe(total=100), tmp_path / "a", tokenizer=tokenizer)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        build_recipe(recipe(total=100, seed=1), tmp_path / "b", tokenizer=tokenizer)
        assert gc.get_freeze_count() > frozen * 0.9  # still frozen (a few may have been freed)
    finally:
        gc.unfreeze()
