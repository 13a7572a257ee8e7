"""The Python renderer (``data_recipes/render.py``) is byte-identical to the Jinja chat template.

It is chosen only for posttrain's own templates (by hash), renders every row of real builds (all
domains, both modes, tool calls, truncated traces, OFF copies with and without working, rows read
from Nemotron-schema files) exactly as ``apply_chat_template`` does, on all three marker families,
and on generated messages it either gives Jinja's text or hands the row to Jinja.
"""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_recipes.build import build_recipe
from data_recipes.config import RecipeConfig, SourceConfig
from data_recipes.domains import DOMAINS, get
from data_recipes.mixture import SPLITS
from data_recipes.parallel import _fast_renderer, render, render_many
from data_recipes.render import KNOWN, python_renderer
from data_recipes.transforms.reasoning import off_copy
from posttrain.models.template import KNOWN as FAMILIES
from posttrain.models.template import TurnMarkers, render_template

TEMPLATES = {name: render_template(markers) for name, (markers, _) in FAMILIES.items()}


@pytest.fixture(scope="module")
def toks(tokenizer):
    """The built-in tokenizer under each known template (the BPE stays; only the text matters here)."""
    out = {}
    for name, template in TEMPLATES.items():
        tok = copy.copy(tokenizer)
        tok.chat_template = template
        out[name] = tok
    return out


def test_known_hashes_are_posttrains_templates():
    want = {
        hashlib.sha256(render_template(m).encode()).hexdigest(): (m.system, m.user, m.assistant, m.end)
        for m, _ in FAMILIES.values()
    }
    assert KNOWN == want


def test_other_templates_go_through_jinja(tokenizer):
    custom = render_template(TurnMarkers("<s>sys\n", "<s>usr\n", "<s>bot\n", "</s>"))
    for template in (
        custom,
        TEMPLATES["nano2"] + " ",
        TEMPLATES["nano2"].replace("</think>", "</thought>"),
        None,
        {"default": TEMPLATES["nano2"]},  # a dict of named templates: unhashable, not ours to pick from
    ):
        assert python_renderer(template) is None
    tok = copy.copy(tokenizer)
    tok.chat_template = custom
    rows = _generated(2)
    assert render_many(tok, rows) == [render(tok, s) for s in rows]


def _generated(n: int, seed: int = 0) -> list[dict]:
    cfg = RecipeConfig(name="render", total=n * len(DOMAINS), seed=seed)
    rows = [s for d in sorted(DOMAINS) for s in get(d).generate(cfg, list(range(n)))]
    return rows + [off_copy(s, working=True) for s in rows[::2]]


def _nemotron_file(path, n: int = 30) -> str:
    """Generated samples in the public dataset's on-disk form (inline ``<think>``, metadata a string)."""
    lines = []
    for s in _generated(n // 5 + 1, seed=7)[:n]:
        msgs = []
        for m in s["messages"]:
            content = m["content"]
            if m["role"] == "assistant" and s["reasoning"] == "on":
                content = f"<think>\n{m['reasoning_content'] or ''}\n</think>\n{content}"
            msgs.append(
                {
                    "role": m["role"],
                    "content": content,
                    **({"tool_calls": m["tool_calls"]} if m.get("tool_calls") else {}),
                }
            )
        row = {k: s[k] for k in ("uuid", "license", "version", "category", "reasoning")} | {
            "generator": "file"
        }
        lines.append(json.dumps({**row, "messages": msgs, "metadata": json.dumps(s["metadata"])}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("streaming", [False, True])
def test_every_row_of_a_real_build_renders_identically(streaming, tokenizer, toks, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    src = SourceConfig(path=_nemotron_file(tmp_path / "rows.jsonl"), take="all")
    cfg = RecipeConfig(
        name="render",
        total=400,
        sources=[src],
        streaming=streaming,
        off_fraction=0.3,
        off_working=["math", "chat", "tool_calling"],
        truncate_fraction=0.3,
        truncate_budget=[1, 24],
        max_length=4096,
    )
    build_recipe(cfg, tmp_path / "out", tokenizer=tokenizer)
    rows = [
        json.loads(line)
        for sp in SPLITS
        for line in (tmp_path / "out" / "samples" / f"{sp}.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert {s["category"] for s in rows} >= set(DOMAINS)
    assert {s["reasoning"] for s in rows} == {"on", "off"}
    assert any("truncated_at" in s["metadata"] for s in rows)
    assert any(m.get("tool_calls") for s in rows for m in s["messages"])
    assert sum(s["generator"] == "file" for s in rows) >= 20  # the file's rows, not deduplicated away
    for name, tok in toks.items():
        py = python_renderer(tok.chat_template)
        fast = [py(s["messages"], s["metadata"].get("tools") or None) for s in rows]
        assert None not in fast, name
        assert fast == [render(tok, s) for s in rows], name
        assert render_many(tok, rows) == fast


_word = st.sampled_from(["/think", "/no_think", " ", "\n", "a", "é", "{", '"', "'", "\\", "<think>", "\t"])
_str = st.lists(_word, max_size=6).map("".join)
_text = st.one_of(st.none(), _str)
_args = st.one_of(_str, st.dictionaries(_str, st.one_of(_str, st.integers()), max_size=2))
_fn = st.fixed_dictionaries({"name": _str, "arguments": _args})
_call = st.one_of(st.fixed_dictionaries({"id": _str, "type": st.just("function"), "function": _fn}), _fn)


@st.composite
def _turn(draw, odd: bool = False):
    """A message of the canonical shape, or with ``odd`` any role, value types and missing keys."""
    roles = ["system", "user", "assistant", "tool", "bot"] if odd else ["user", "assistant", "tool"]
    m = {"role": draw(st.sampled_from(roles))}
    junk = st.one_of(_text, st.integers(-1, 1), st.just([]), st.just({"k": 1})) if odd else _text
    calls = st.lists(_call, max_size=2)
    if odd:
        calls = st.one_of(calls, st.lists(st.fixed_dictionaries({"function": st.one_of(st.none(), _str)})))
    keys = {
        "content": junk,
        "reasoning_content": junk,
        "thinking": junk,
        "reasoning": junk,
        "tool_calls": calls,
    }
    for key, values in keys.items():
        if key in ("content", "reasoning_content") and not odd or draw(st.booleans()):
            m[key] = draw(values)
    return m


@st.composite
def _conversation(draw, odd: bool = False):
    head = [{"role": "system", "content": draw(_text)}] if draw(st.booleans()) else []
    return head + draw(st.lists(_turn(odd), min_size=0 if head else 1, max_size=5))


_tools = st.one_of(
    st.none(), st.just([]), st.lists(st.fixed_dictionaries({"name": _str, "description": _str}), max_size=2)
)


def _jinja(tok, messages: list, tools) -> str | None:
    try:
        return _fast_renderer(tok)(copy.deepcopy(messages), tools)
    except Exception:  # noqa: BLE001 - Jinja rejects it
        return None


@settings(max_examples=300, deadline=None)
@given(messages=_conversation(), tools=_tools, family=st.sampled_from(sorted(TEMPLATES)))
def test_python_render_equals_jinja_on_generated_turns(toks, messages, tools, family):
    tok = toks[family]
    want = python_renderer(tok.chat_template)(messages, tools)
    assert want is not None and want == _jinja(tok, messages, tools)
    sample = {"messages": messages, "metadata": {"tools": tools}}
    assert render_many(tok, [sample]) == [want] == [render(tok, sample)]


@settings(max_examples=300, deadline=None)
@given(messages=_conversation(odd=True), tools=_tools, family=st.sampled_from(sorted(TEMPLATES)))
def test_python_render_equals_jinja_or_defers(toks, messages, tools, family):
    """On odd shapes the Python text equals Jinja's, or it returns None and Jinja renders or rejects it."""
    tok = toks[family]
    got, want = python_renderer(tok.chat_template)(messages, tools), _jinja(tok, messages, tools)
    assert got is None or got == want
    sample = {"messages": messages, "metadata": {"tools": tools}}
    if want is not None:
        assert render_many(tok, [sample]) == [want]


def test_python_render_covers_the_canonical_shapes(toks):
    """Generated rows never fall back to Jinja, on any template (so the build gets the speed)."""
    rows = _generated(6)
    for tok in toks.values():
        py = python_renderer(tok.chat_template)
        assert all(py(s["messages"], s["metadata"].get("tools") or None) is not None for s in rows)
