"""Canonical schema: strict validation, normalisation of real Nemotron rows, adapters, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from data_recipes.config import SourceConfig
from data_recipes.errors import DataError
from data_recipes.schema import validate_sample, with_flag
from data_recipes.sources import load_source
from data_recipes.views import FEATURES, sft_row

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIX / name).read_text().splitlines() if line.strip()]


def test_round_trip_is_stable_and_keeps_tool_calls():
    for i, raw in enumerate(rows("good.jsonl")):
        once = validate_sample(raw, f"good.jsonl:{i + 1}")
        twice = validate_sample(json.loads(json.dumps(once)), "again")
        assert once == twice
        raw_calls = [m.get("tool_calls") or [] for m in raw["messages"]]
        got_calls = [m["tool_calls"] or [] for m in once["messages"]]
        assert [len(c) for c in raw_calls] == [len(c) for c in got_calls]
        for rc, gc in zip(sum(raw_calls, []), sum(got_calls, [])):
            args = rc["function"]["arguments"]
            assert json.loads(gc["function"]["arguments"]) == (
                json.loads(args) if isinstance(args, str) else args
            )
            assert gc["id"] == rc["id"] and gc["function"]["name"] == rc["function"]["name"]


def test_round_trip_through_arrow_sft_features():
    samples = [validate_sample(r, "x") for r in rows("good.jsonl")]
    ds = Dataset.from_list([sft_row(s) for s in samples], features=FEATURES["sft"])
    for s, back in zip(samples, ds):
        assert back["messages"] == s["messages"]
        assert (json.loads(back["tools"]) if back["tools"] else None) == s["metadata"].get("tools")


def test_nemotron_v1_row_normalised():
    s = validate_sample(rows("good.jsonl")[1], "v1")
    first, last = s["messages"][2], s["messages"][-1]
    assert first["reasoning_content"] == "I should call get_weather." and first["content"] == ""
    assert (
        last["reasoning_content"] == "It is 18 degrees." and last["content"] == "It is 18 degrees in Paris."
    )
    assert s["metadata"]["tools"][0]["name"] == "get_weather"  # metadata was a JSON string
    assert set(first) == {"role", "content", "reasoning_content", "tool_calls"}


def test_off_row_inline_empty_think_removed():
    s = validate_sample(rows("good.jsonl")[2], "v2")
    assert s["messages"][-1] == {
        "role": "assistant",
        "content": "The answer is \\boxed{4}",
        "reasoning_content": None,
        "tool_calls": None,
    }


def test_off_row_with_reasoning_rejected():
    raw = rows("good.jsonl")[0]
    raw["reasoning"] = "off"
    with pytest.raises(DataError, match="reasoning_content"):
        validate_sample(raw, "f:1")


@pytest.mark.parametrize(
    "mutate,field,reason",
    [
        (lambda r: r.pop("uuid"), "uuid", "missing"),
        (lambda r: r.update(messages=[]), "messages", "non-empty"),
        (
            lambda r: r["messages"].append({"role": "user", "content": "again?"}),
            "messages[3].role",
            "last turn",
        ),
        (lambda r: r["messages"][1].update(extra=1), "messages[1]", "unknown message keys"),
        (lambda r: r["messages"].insert(2, {"role": "system", "content": "x"}), "messages[2].role", "system"),
        (lambda r: r["messages"][1].update(content=7), "messages[1].content", "string"),
        (lambda r: r.update(metadata="{oops"), "metadata", "JSON"),
        (
            lambda r: r["messages"][1].update(tool_calls=[{"function": {"name": "f", "arguments": "{}"}}]),
            "messages[1].tool_calls",
            "only assistant",
        ),
    ],
)
def test_strict_validation_names_field_and_reason(mutate, field, reason):
    raw = rows("good.jsonl")[0]
    mutate(raw)
    with pytest.raises(DataError) as e:
        validate_sample(raw, "f.jsonl:9")
    assert e.value.where == "f.jsonl:9" and e.value.field == field and reason in e.value.reason
    assert str(e.value).startswith(f"f.jsonl:9: {field}: ") and "\n" not in str(e.value)


def test_with_flag_sets_exactly_one_flag():
    msgs = [
        {"role": "system", "content": "Be brief. /think", "reasoning_content": None, "tool_calls": None},
        {"role": "user", "content": "hi /no_think", "reasoning_content": None, "tool_calls": None},
    ]
    out = with_flag(msgs, "off")
    assert out[0]["content"] == "/no_think\nBe brief." and out[1]["content"] == "hi"
    assert with_flag(msgs[1:], "on")[0]["content"] == "/think"


def test_adapters_openai_sharegpt_preference():
    oa, _ = load_source(SourceConfig(path=str(FIX / "openai.jsonl"), format="openai"), "raise")
    assert [s["reasoning"] for s in oa] == ["off", "off"]
    assert oa[1]["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert oa[1]["metadata"]["tools"][0]["name"] == "get_weather"
    sg, _ = load_source(
        SourceConfig(path=str(FIX / "sharegpt.jsonl"), format="sharegpt", category="chat"), "raise"
    )
    assert sg[0]["reasoning"] == "on" and sg[0]["messages"][-1]["reasoning_content"] == "It is Paris."
    assert sg[0]["messages"][0] == {
        "role": "system",
        "content": "Be brief.",
        "reasoning_content": None,
        "tool_calls": None,
    }
    pref, _ = load_source(SourceConfig(path=str(FIX / "preference.jsonl"), format="preference"), "raise")
    assert (
        pref[0]["category"] == "math"
        and pref[0]["metadata"]["rejected"][0]["content"] == "The answer is \\boxed{8}"
    )
    assert (
        pref[1]["messages"][-1]["content"] == "Yes."
        and pref[1]["metadata"]["rejected"][0]["content"] == "No."
    )
    assert len({s["uuid"] for s in oa + sg + pref}) == 5


def test_sharegpt_unknown_speaker():
    from data_recipes.adapters import adapt

    with pytest.raises(DataError, match=r"conversations\[0\]\.from"):
        adapt({"conversations": [{"from": "narrator", "value": "x"}]}, "sharegpt", "f:1", None)


def test_parquet_source_loads_unchanged(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = rows("good.jsonl")
    for r in raw:  # the Nemotron parquet layout: metadata is a JSON string, arguments are strings
        r["metadata"] = r["metadata"] if isinstance(r["metadata"], str) else json.dumps(r["metadata"])
        for m in r["messages"]:
            for tc in m.get("tool_calls") or []:
                if not isinstance(tc["function"]["arguments"], str):
                    tc["function"]["arguments"] = json.dumps(tc["function"]["arguments"])
    pq.write_table(pa.Table.from_pylist(raw), tmp_path / "part-0.parquet")
    got, rejects = load_source(SourceConfig(path=str(tmp_path)), "raise")
    want = [validate_sample(r, "x") for r in raw]
    assert rejects == [] and [{k: v for k, v in g.items() if k != "_where"} for g in got] == want
    assert got[1]["_where"] == f"{tmp_path / 'part-0.parquet'}:2"
