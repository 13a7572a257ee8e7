"""Read external datasets: local JSONL / Parquet files or folders, or (online only) an HF dataset id.

Each record is decoded, adapted (``adapters.adapt``) and validated (``schema.validate_sample``). A bad
record becomes a ``DataError`` naming ``file:line`` (Parquet: ``file:row``), the field and the reason;
``load_source`` raises it or collects it as a reject, depending on ``on_error``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_recipes.adapters import adapt
from data_recipes.config import SourceConfig
from data_recipes.errors import DataError
from data_recipes.schema import validate_message, validate_sample

_SUFFIXES = (".jsonl", ".json", ".parquet")
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    return [path]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _decode(text: str, where: str) -> Any:
    """One JSON line, strictly: no NaN/Infinity, no lone surrogates, no unbounded nesting."""
    try:
        rec = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        return DataError(where, "<json>", f"invalid JSON: {e.msg} at column {e.colno}")
    except ValueError as e:
        return DataError(where, "<json>", f"invalid JSON: {e}")
    except RecursionError:
        return DataError(where, "<json>", "invalid JSON: nested too deeply")
    if _SURROGATE.search(text):  # only then pay for the exact check
        try:
            json.dumps(rec, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return DataError(where, "<json>", "invalid JSON: a \\u escape is a lone UTF-16 surrogate")
    return rec


def decode_line(where: str, raw: bytes) -> tuple[str, Any, str] | None:
    """``(where, record | DataError, text)`` for one raw JSONL line; ``None`` for a blank line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        err = DataError(where, "<line>", f"invalid UTF-8 at byte {e.start}")
        return where, err, raw.decode("utf-8", "replace")
    return (where, _decode(text, where), text) if text.strip() else None


def jsonl_lines(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(file:line, raw bytes)`` of every line of a JSONL file, undecoded."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            yield f"{path}:{lineno}", raw


def _jsonl(path: Path) -> Iterator[tuple[str, Any, str]]:
    for where, raw in jsonl_lines(path):
        item = decode_line(where, raw)
        if item is not None:
            yield item


def _parquet(path: Path) -> Iterator[tuple[str, Any, str]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for rec in batch.to_pylist():
            row += 1
            yield f"{path}:{row}", rec, ""


def _hub(src: SourceConfig, seed: int) -> Iterator[tuple[str, Any, str]]:
    where = f"hf:{src.path}[{src.split}]"
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise DataError(
            where, "sources.path", "not a local file and the HF hub is offline (HF_HUB_OFFLINE=1)"
        )
    import datasets

    try:
        ds = datasets.load_dataset(src.path, split=src.split, streaming=True).shuffle(
            seed=seed, buffer_size=10_000
        )
    except Exception as e:  # noqa: BLE001 - any hub failure becomes a one-line DataError
        raise DataError(where, "sources.path", f"cannot load HF dataset: {type(e).__name__}: {e}") from None
    for i, rec in enumerate(ds):
        yield f"{where}:{i + 1}", rec, ""


def local_files(src: SourceConfig) -> list[Path] | None:
    """The data files of a local source, or None for an HF dataset id; a ``DataError`` otherwise."""
    path = Path(src.path).expanduser()
    if path.exists():
        files = _files(path)
        if not files:
            raise DataError(str(path), "sources.path", f"no {'/'.join(_SUFFIXES)} files in this directory")
        return files
    if src.path.count("/") == 1 and not src.path.startswith((".", "/")):
        return None
    raise DataError(str(path), "sources.path", "no such file or directory")


def _nonempty(gen: Iterator, path: Path) -> Iterator:
    """``gen``, raising a ``DataError`` naming ``path`` if it yields nothing (an empty source file)."""
    empty = True
    for item in gen:
        empty = False
        yield item
    if empty:
        raise DataError(str(path), "sources.path", "empty file: no records")


def iter_raw(
    src: SourceConfig, *, hub_rows: int | None = None, seed: int = 0
) -> Iterator[tuple[str, Any, str]]:
    """``(where, record | DataError, raw text)`` for the records of ``src`` (up to ``src.limit``).

    A hub dataset is streamed, shuffled with a 10k buffer, and read only up to ``hub_rows`` records
    (the mixture's share): reading a 20M-row split in full to sample from it would not scale.
    """
    limit, files = src.limit, local_files(src)
    if files is not None:
        gens = [_nonempty(_parquet(p) if p.suffix == ".parquet" else _jsonl(p), p) for p in files]
    else:
        gens = [_hub(src, seed)]
        limit = hub_rows if limit is None else min(limit, hub_rows if hub_rows is not None else limit)
    n = 0
    for gen in gens:
        for item in gen:
            if limit is not None and n >= limit:
                return
            n += 1
            yield item


def parse(where: str, rec: Any, src: SourceConfig) -> dict:
    """Adapt and validate one record; the preference adapter's rejected turns are validated too."""
    sample = validate_sample(adapt(rec, src.format, where, src.category), where)
    rejected = sample["metadata"].get("rejected")
    if rejected is not None:
        if not isinstance(rejected, list) or not rejected:
            raise DataError(where, "rejected", "must be a non-empty list of assistant turns")
        turns = [validate_message(m, where, f"rejected[{i}]") for i, m in enumerate(rejected)]
        if turns[-1]["role"] != "assistant":
            raise DataError(where, f"rejected[{len(turns) - 1}].role", "last rejected turn must be assistant")
        sample["metadata"]["rejected"] = turns
    sample["_where"] = where
    return sample


def parse_records(items, src: SourceConfig, on_error: str) -> tuple[list, list]:
    """Valid samples and rejects of ``(where, record | DataError, raw)`` items; raises the first
    ``DataError`` if ``on_error=raise``."""
    samples, rejects = [], []
    for where, rec, raw in items:
        try:
            if isinstance(rec, DataError):
                raise rec
            samples.append(parse(where, rec, src))
        except DataError as err:
            if on_error == "raise":
                raise
            rejects.append(err.as_reject(raw or json.dumps(rec, default=str)[:2000]))
    return samples, rejects


def load_source(
    src: SourceConfig, on_error: str, *, hub_rows: int | None = None, seed: int = 0
) -> tuple[list, list]:
    """All valid samples of ``src`` and the rejects (see ``parse_records``)."""
    return parse_records(iter_raw(src, hub_rows=hub_rows, seed=seed), src, on_error)


def source_hash(src: SourceConfig) -> str:
    """Content hash of a local source (file bytes), or its id and split for a hub dataset."""
    h = hashlib.sha256()
    path = Path(src.path).expanduser()
    if path.exists():
        for p in _files(path):
            h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
            with p.open("rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(chunk)
    else:
        h.update(f"hub:{src.path}:{src.split}".encode())
    return h.hexdigest()[:16]
