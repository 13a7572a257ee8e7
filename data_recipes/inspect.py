"""``posttrain data inspect <dir>``: counts from the manifest and a few rendered samples of each kind.

Samples are rendered with the chat template saved by the build (``chat_template.jinja``), exactly
as the trainers see them: reasoning ON, reasoning OFF, truncated, tool calling, an offline
preference pair and an RL prompt with its verifier metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

from data_recipes.errors import DataError
from data_recipes.views import tools_json


def _render(template: str, messages: list[dict], tools: list | None = None, gen: bool = False) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    if not template:
        return json.dumps(messages, indent=1, ensure_ascii=False)
    rendered, _ = render_jinja_template(
        [messages], tools=tools or None, chat_template=template, add_generation_prompt=gen
    )
    return rendered[0]


def _table(title: str, counts: dict) -> list[str]:
    return [f"{title}: " + ", ".join(f"{k}={v}" for k, v in counts.items())]


def _samples(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def render_inspect(out_dir: str | Path, n: int = 2) -> str:
    """A printable report of the build in ``out_dir``."""
    out = Path(out_dir)
    if not (out / "manifest.json").is_file():
        raise DataError(str(out), "manifest.json", "no data build here (run `posttrain data build` first)")
    m = json.loads((out / "manifest.json").read_text())
    tpl_path = out / "chat_template.jinja"
    template = tpl_path.read_text(encoding="utf-8") if tpl_path.exists() else ""
    c = m["counts"]
    lines = [
        f"# {m.get('name')}  fingerprint {m['fingerprint']}",
        f"total: {c['total']}  truncated: {c['truncated']}",
    ]
    lines += _table("by category", c["by_category"]) + _table("by reasoning", c["by_reasoning"])
    lines += _table("by split", c.get("by_split", {}))
    lines += [
        f"rejected: {m['rejected']['count']} (see {m['rejected']['path']})",
        f"dropped: {json.dumps(m.get('dropped', {}))}",
        f"token lengths: {json.dumps(m.get('token_lengths', {}))}",
    ]
    for view, per_split in m.get("views", {}).items():
        lines += _table(f"view {view}", per_split)
    train = _samples(out / "samples" / "train.jsonl")
    kinds = {
        "reasoning ON": lambda s: s["reasoning"] == "on" and "truncated_at" not in s["metadata"],
        "reasoning OFF": lambda s: s["reasoning"] == "off",
        "truncated thinking": lambda s: "truncated_at" in s["metadata"],
        "tool calling": lambda s: s["category"] == "tool_calling",
    }
    for kind, pred in kinds.items():
        for s in [s for s in train if pred(s)][:n]:
            tools = json.loads(tools_json(s)) if tools_json(s) else None
            lines += ["", f"## {kind} [{s['category']}] {s['uuid']}", _render(template, s["messages"], tools)]
            if "truncated_at" in s["metadata"]:
                meta = {k: s["metadata"][k] for k in ("thinking_budget", "truncated_tokens", "truncated_at")}
                lines.append(f"(truncation: {meta})")
    lines += _view_samples(out, template, n)
    return "\n".join(lines)


def _view_samples(out: Path, template: str, n: int) -> list[str]:
    from datasets import load_from_disk

    lines: list[str] = []
    if (out / "preference").exists():
        pref = load_from_disk(str(out / "preference"))["train"]
        for row in pref.select(range(min(n, len(pref)))):
            tools = json.loads(row["tools"]) if row["tools"] else None
            lines += [
                "",
                f"## preference pair [{row['category']}]",
                _render(template, row["prompt"], tools, gen=True),
                f"chosen:   {json.dumps(row['chosen'], ensure_ascii=False)}",
                f"rejected: {json.dumps(row['rejected'], ensure_ascii=False)}",
            ]
    if (out / "rl").exists():
        rl = load_from_disk(str(out / "rl"))["train"]
        for row in rl.select(range(min(n, len(rl)))):
            lines += [
                "",
                f"## RL prompt [{row['category']}] metadata={row['metadata']}",
                _render(template, row["prompt"], None, gen=True),
            ]
    return lines
