"""Stage views of the canonical samples, in the forms TRL 1.16 trainers accept.

* ``sft``: ``messages`` (conversational language modelling) + ``tools`` (a JSON string or null;
  ``SFTTrainer`` and ``DPOTrainer`` ``json.loads`` it and pass it to the chat template as ``tools``).
* ``preference``: ``prompt`` / ``chosen`` / ``rejected`` (conversational preference) + ``tools``.
  ``chosen`` is the reference completion; ``rejected`` is the domain's corrupted version (or a
  source's own rejected turns). For tool calling the completion is the first (call) turn.
* ``rl``: ``prompt`` + ``metadata`` (a JSON string with the verifier fields). ``GRPOTrainer`` has no
  per-example ``tools`` column, so the tool list is written into the system turn in the exact
  ``<AVAILABLE_TOOLS>[...]</AVAILABLE_TOOLS>`` form the template produces from ``tools``.

Every message has the keys ``role, content, reasoning_content, tool_calls`` (one Arrow schema).
"""

from __future__ import annotations

import json
import random

from datasets import Features, List, Value

from data_recipes.domains import DOMAINS, get
from data_recipes.schema import prompt_end

_S = Value("string")
MESSAGE = {
    "role": _S,
    "content": _S,
    "reasoning_content": _S,
    "tool_calls": List({"id": _S, "type": _S, "function": {"name": _S, "arguments": _S}}),
}
_COMMON = {"category": _S, "reasoning": _S, "uuid": _S}
FEATURES = {
    "sft": Features({"messages": List(MESSAGE), "tools": _S, **_COMMON, "truncated": Value("bool")}),
    "preference": Features(
        {
            "prompt": List(MESSAGE),
            "chosen": List(MESSAGE),
            "rejected": List(MESSAGE),
            "tools": _S,
            **_COMMON,
            "metadata": _S,
        }
    ),
    "rl": Features({"prompt": List(MESSAGE), **_COMMON, "metadata": _S}),
}
VERIFIER_KEYS = {
    "math": ("answer",),
    "code": ("entry_point", "tests"),
    "tool_calling": ("expected_calls",),
    "safety": ("harmful",),
    "chat": ("constraints",),
}


def tools_json(sample: dict) -> str | None:
    tools = sample["metadata"].get("tools")
    return json.dumps(tools, ensure_ascii=False) if tools else None


def tools_in_system(messages: list[dict], tools: list | None) -> list[dict]:
    """Messages with the tool list appended to the system turn (what the template renders from ``tools``)."""
    if not tools:
        return messages
    block = f"<AVAILABLE_TOOLS>{json.dumps(tools, ensure_ascii=False)}</AVAILABLE_TOOLS>"
    first = dict(messages[0])
    first["content"] = f"{first['content']}\n{block}" if first["content"] else block
    return [first, *messages[1:]]


def verifier_metadata(sample: dict) -> str:
    meta = {k: v for k, v in sample["metadata"].items() if k not in ("rejected", "extra")}
    return json.dumps(meta, ensure_ascii=False)


def sft_row(sample: dict, tools: str | None = None) -> dict:
    return {
        "messages": sample["messages"],
        "tools": tools if tools is not None else tools_json(sample),
        "category": sample["category"],
        "reasoning": sample["reasoning"],
        "uuid": sample["uuid"],
        "truncated": "truncated_at" in sample["metadata"],
    }


def is_verifiable(sample: dict) -> bool:
    keys = VERIFIER_KEYS.get(sample["category"])
    return keys is not None and all(k in sample["metadata"] for k in keys)


def rl_row(sample: dict, meta: str | None = None) -> dict | None:
    if not is_verifiable(sample):
        return None
    prompt = tools_in_system(
        sample["messages"][: prompt_end(sample["messages"])], sample["metadata"].get("tools")
    )
    return {
        "prompt": prompt,
        "category": sample["category"],
        "reasoning": sample["reasoning"],
        "uuid": sample["uuid"],
        "metadata": meta if meta is not None else verifier_metadata(sample),
    }


def completion(sample: dict) -> list[dict]:
    """The expected completion: the first call turn for tool calling, else everything after the prompt."""
    rest = sample["messages"][prompt_end(sample["messages"]) :]
    if sample["category"] == "tool_calling" and "expected_calls" in sample["metadata"]:
        return rest[:1]
    return rest


def preference_row(sample: dict, seed: int, meta: str | None = None, tools: str | None = None) -> dict | None:
    rejected = sample["metadata"].get("rejected")
    ours = sample["generator"].startswith("posttrain/data_recipes.") and sample["category"] in DOMAINS
    if rejected is None and not (ours and is_verifiable(sample)):
        return None
    if rejected is None:
        rng = random.Random(f"{seed}:corrupt:{sample['uuid']}")
        rejected = [get(sample["category"]).corrupt(sample, rng)]
    return {
        "prompt": sample["messages"][: prompt_end(sample["messages"])],
        "chosen": completion(sample),
        "rejected": rejected,
        "tools": tools if tools is not None else tools_json(sample),
        "category": sample["category"],
        "reasoning": sample["reasoning"],
        "uuid": sample["uuid"],
        "metadata": meta if meta is not None else verifier_metadata(sample),
    }


def rows_of(sample: dict, seed: int) -> tuple[dict, dict | None, dict | None]:
    """The sample's sft, preference and rl rows (None where it has none), each JSON field encoded once."""
    meta = verifier_metadata(sample) if is_verifiable(sample) or "rejected" in sample["metadata"] else None
    tools = tools_json(sample)
    return sft_row(sample, tools), preference_row(sample, seed, meta, tools), rl_row(sample, meta)


def view_rows(samples: list[dict], seed: int) -> dict[str, list[dict]]:
    """``{"sft": rows, "preference": rows, "rl": rows}`` for one split."""
    out: dict[str, list[dict]] = {"sft": [], "preference": [], "rl": []}
    for s in samples:
        for name, row in zip(out, rows_of(s, seed)):
            if row is not None:
                out[name].append(row)
    return out
