"""Write a build's files: canonical samples, rejects, stage views, chat template and manifest.

Layout under the output folder::

    manifest.json  rejects.jsonl  chat_template.jinja
    samples/{train,validation,test}.jsonl     canonical rows (metadata as a dict)
    sft/ preference/ rl/                      datasets.save_to_disk DatasetDicts (train/validation/test)
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
from datasets import Dataset, DatasetDict, DatasetInfo
from datasets.table import InMemoryTable
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from data_recipes.mixture import SPLITS
from data_recipes.views import FEATURES, view_rows

PUBLIC_KEYS = ("uuid", "license", "generator", "version", "category", "reasoning", "messages", "metadata")


@contextmanager
def _quiet_progress():
    """Hide the per-shard "Saving the dataset" bars (restores the previous setting)."""
    was = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was:
            enable_progress_bars()


def percentiles(values: list[int]) -> dict:
    """p50/p90/p99/max/mean of ``values`` (nearest-rank); empty dict for no values."""
    if not values:
        return {}
    v = sorted(values)

    def at(q: float) -> int:
        return v[min(len(v) - 1, max(0, int(round(q * len(v) + 0.5)) - 1))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": v[-1], "mean": round(sum(v) / len(v), 1)}


def _dataset(rows: list[dict], features) -> Dataset:
    """Rows -> Dataset through pyarrow (3x faster than ``from_list``; also types an empty split)."""
    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=features))


def public(sample: dict) -> dict:
    return {k: sample[k] for k in PUBLIC_KEYS}


def _jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_output(
    out: Path, splits: dict[str, list[dict]], rejects: list[dict], manifest: dict, seed: int, template: str
) -> None:
    """Write everything under ``out``; adds ``manifest["views"]`` (rows per view and split)."""
    (out / "samples").mkdir(parents=True, exist_ok=True)
    for sp in SPLITS:
        _jsonl(out / "samples" / f"{sp}.jsonl", [public(s) for s in splits[sp]])
    _jsonl(out / "rejects.jsonl", rejects)
    (out / "chat_template.jinja").write_text(template or "", encoding="utf-8")
    per_split = {sp: view_rows(splits[sp], seed) for sp in SPLITS}
    manifest["views"] = {}
    with _quiet_progress():
        for view, features in FEATURES.items():
            dd = DatasetDict({sp: _dataset(per_split[sp][view], features) for sp in SPLITS})
            # an empty split would be saved with no shard, which load_from_disk cannot read: give it one
            dd.save_to_disk(str(out / view), num_shards={sp: 1 for sp in SPLITS if not per_split[sp][view]})
            manifest["views"][view] = {sp: len(dd[sp]) for sp in SPLITS}
    write_manifest(out, manifest)


def write_manifest(out: Path, manifest: dict) -> None:
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
