"""Streaming build (``streaming=true``) for inputs too large to hold: rows flow in chunks through
validate -> flag -> dedup -> decontaminate -> split -> OFF copy -> truncate -> template ->
tokenise/length-check -> views -> write, with ``num_proc`` worker processes doing everything but
dedup and the writes, which the parent does in input order.

Memory holds the dedup keys (two 8-byte hashes per distinct row, in Python sets: ~130 B per row),
the token lengths (4 B each) and ``2 * num_proc`` chunks, never the rows themselves. The checks,
files and manifest keys are those of the in-memory build (``build.py``), with these departures:

* splits: a prompt goes to train/validation/test by a seeded hash of its normalised text, so
  splits stay prompt-disjoint and hit their fractions in expectation rather than exactly;
* OFF copies and truncations: each ON sample is picked with probability ``off_fraction`` /
  ``truncate_fraction`` by a seeded hash of its uuid, not exactly ``round(fraction * #ON)`` of them;
* order: rows keep their input order within a split (trainers shuffle when they sample);
* sources must be read whole (``take: all``, optionally with ``limit``): a weighted share of a
  stream would need its length first.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import random
import shutil
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from data_recipes.config import RecipeConfig
from data_recipes.domains import get
from data_recipes.errors import DataError
from data_recipes.mixture import SPLITS, allocate
from data_recipes.parallel import _measure, _no_rust_threads
from data_recipes.sources import _nonempty, decode_line, iter_raw, jsonl_lines, local_files, parse_records
from data_recipes.transforms.decontam import build_index, ngrams, sample_text
from data_recipes.transforms.dedup import exact_key, prompt_key
from data_recipes.transforms.reasoning import apply_flag, off_copy
from data_recipes.transforms.truncation import _longest, truncate_sample
from data_recipes.views import FEATURES, rows_of
from data_recipes.writer import PUBLIC_KEYS

CHUNK = 1000
_CTX: dict = {}


def _h64(*parts: str) -> int:
    return int.from_bytes(hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest(), "little")


def _unit(*parts: str) -> float:
    """A seeded hash of ``parts`` as a number in [0, 1)."""
    return _h64(*parts) / 2**64


def split_of(key: str, fractions: dict[str, float], seed: int) -> str:
    u = _unit(str(seed), "split", key)
    return "validation" if u < fractions["validation"] else "test" if u < 1 - fractions["train"] else "train"


def check_config(cfg: RecipeConfig) -> None:
    for i, src in enumerate(cfg.sources):
        if src.take != "all":
            raise DataError(
                f"recipe {cfg.name}",
                f"sources[{i}].take",
                f"streaming builds read a source whole: set take=all (and limit=N to cap it), got {src.take!r}",
            )


def tasks(cfg: RecipeConfig):
    """Chunks of work: ``("gen", domain, start, stop)`` or ``("src", i, [(where, raw | record)])``."""
    target = allocate(cfg.total, {d: w for d, w in cfg.domains.items() if w > 0})
    for d in sorted(target):
        for a in range(0, target[d], CHUNK):
            yield ("gen", d, a, min(target[d], a + CHUNK))
    for i, src in enumerate(cfg.sources):
        files = local_files(src)
        lines = (
            (it for p in files for it in _nonempty(jsonl_lines(p), p))
            if files and all(p.suffix != ".parquet" for p in files)
            else ((w, (rec, raw)) for w, rec, raw in iter_raw(src, seed=cfg.seed))
        )
        buf = []
        for n, item in enumerate(lines):
            if src.limit is not None and n >= src.limit:
                break
            buf.append(item)
            if len(buf) == CHUNK:
                yield ("src", i, buf)
                buf = []
        if buf:
            yield ("src", i, buf)


def _parse_chunk(cfg: RecipeConfig, i: int, items: list) -> tuple[list[dict], list[dict]]:
    """Raw JSONL lines are decoded here, in the worker; Parquet/hub records arrive decoded."""
    decoded = (
        decode_line(where, payload) if isinstance(payload, bytes) else (where, *payload)
        for where, payload in items
    )
    return parse_records((d for d in decoded if d is not None), cfg.sources[i], cfg.on_error)


def _truncate(s: dict, cfg: RecipeConfig, tok) -> dict:
    lo, hi = cfg.truncate_budget
    if s["reasoning"] != "on" or _unit(str(cfg.seed), "truncate", s["uuid"]) >= cfg.truncate_fraction:
        return s
    _, n = _longest(s, tok)
    if n <= lo:
        return s
    budget = random.Random(f"{cfg.seed}:truncate:{s['uuid']}").randint(lo, min(hi, n - 1))
    return truncate_sample(s, budget, tok) or s


def work(task: tuple) -> dict:
    """One chunk through everything but dedup; rows come back in order, each OFF copy after its source."""
    cfg, tok, index = _CTX["cfg"], _CTX["tok"], _CTX["index"]
    if task[0] == "gen":
        base, rejects = get(task[1]).generate(cfg, list(range(task[2], task[3]))), []
    else:
        base, rejects = _parse_chunk(cfg, task[1], task[2])
    rows, samples = [], []
    for s in base:
        s = apply_flag(s)
        key = prompt_key(s)
        hit = None
        if index:
            grams = ngrams(sample_text(s), cfg.ngram)
            hit = next((name for name, g in index.items() if not grams.isdisjoint(g)), None)
        info = {"exact": _h64(exact_key(s)), "prompt": _h64(key), "on": s["reasoning"] == "on", "hit": hit}
        info["split"], info["owner"] = split_of(key, cfg.splits, cfg.seed), None
        copy = s["reasoning"] == "on" and _unit(str(cfg.seed), "off", s["uuid"]) < cfg.off_fraction
        rows.append(info)
        samples.append(_truncate(s, cfg, tok))
        if copy:
            rows.append({**info, "owner": len(rows) - 1, "on": False})
            samples.append(off_copy(s, s["category"] in cfg.off_working))
    measured = _measure(samples, tok) if samples else {"n_tokens": [], "reasoning_tokens": []}
    n_tok, r_tok = measured["n_tokens"], measured["reasoning_tokens"]
    views = {v: {sp: ([], []) for sp in SPLITS} for v in FEATURES}
    for j, (s, info) in enumerate(zip(samples, rows)):
        info.update(n=n_tok[j], r=r_tok[j], category=s["category"], reasoning=s["reasoning"])
        info["budget"] = s["metadata"].get("thinking_budget")
        info["line"] = json.dumps({k: s[k] for k in PUBLIC_KEYS}, ensure_ascii=False)
        info["where"], info["uuid"] = s["_where"], s["uuid"]
        for v, row in zip(("sft", "preference", "rl"), rows_of(s, cfg.seed)):
            if row is not None:
                views[v][info["split"]][0].append(row)
                views[v][info["split"]][1].append(j)
    batches = {
        (v, sp): (pa.RecordBatch.from_pylist(r, schema=FEATURES[v].arrow_schema), owners)
        for v, per in views.items()
        for sp, (r, owners) in per.items()
        if r
    }
    return {"rows": rows, "rejects": rejects, "batches": batches}


def _init(ctx: dict) -> None:
    _CTX.update(ctx)


def run_ordered(cfg: RecipeConfig, tok):
    """``work`` over ``tasks(cfg)`` in order, in ``num_proc`` processes with ``2 * num_proc`` chunks in flight."""
    index = build_index(list(cfg.decontam_sets), cfg.ngram) if cfg.decontaminate and cfg.decontam_sets else {}
    ctx = {"cfg": cfg, "tok": tok, "index": index}
    if cfg.num_proc == 1:
        _init(ctx)
        yield from map(work, tasks(cfg))
        return
    with _no_rust_threads(), mp.get_context("fork").Pool(cfg.num_proc, _init, (ctx,)) as pool:
        window: deque = deque()
        for t in tasks(cfg):
            window.append(pool.apply_async(work, (t,)))
            if len(window) >= 2 * cfg.num_proc:
                yield window.popleft().get()
        while window:
            yield window.popleft().get()


@dataclass
class Tally:
    """What the parent keeps: dedup keys, counters and lengths (no rows)."""

    dedup: bool = True
    seen_exact: set = field(default_factory=set)
    seen_prompt: dict = field(default_factory=dict)  # prompt hash -> 1: ON seen | 2: OFF seen | 4: admitted
    counts: Counter = field(default_factory=Counter)
    by_category: Counter = field(default_factory=Counter)
    by_reasoning: Counter = field(default_factory=Counter)
    by_split: Counter = field(default_factory=Counter)
    prompts: Counter = field(default_factory=Counter)
    dedup_by_category: Counter = field(default_factory=Counter)
    decontam: Counter = field(default_factory=Counter)
    lens: array = field(default_factory=lambda: array("I"))
    rlens: array = field(default_factory=lambda: array("I"))
    budgets: list = field(default_factory=list)

    def admit(self, info: dict) -> str | None:
        """Why an original row is dropped (``exact``/``normalized``/``decontam``), or None to keep it."""
        bit = 1 if info["on"] else 2
        seen = self.seen_prompt.get(info["prompt"], 0)
        kind = "exact" if info["exact"] in self.seen_exact else "normalized" if seen & bit else None
        kind = kind if self.dedup else None
        self.seen_exact.add(info["exact"])
        self.seen_prompt[info["prompt"]] = seen | bit
        if kind is not None:
            self.counts[kind] += 1
            self.dedup_by_category[info["category"]] += 1
            return kind
        if info["hit"] is not None:
            self.decontam[info["hit"]] += 1
            return "decontam"
        if not seen & 4:  # the first admitted row of this prompt
            self.prompts[info["split"]] += 1
            self.seen_prompt[info["prompt"]] |= 4
        return None

    def keep(self, info: dict) -> None:
        self.by_category[info["category"]] += 1
        self.by_reasoning[info["reasoning"]] += 1
        self.by_split[info["split"]] += 1
        self.lens.append(info["n"])
        self.rlens.append(info["r"])
        if info["budget"] is not None:
            self.budgets.append(info["budget"])
            self.counts["truncated"] += 1
        self.counts["off_pairs"] += info["owner"] is not None


def _mapped(path: Path):
    """The Arrow file as a Dataset fingerprinted by its bytes (``from_file`` hashes the path, which made
    ``state.json``, and so the build's content hash, differ between two identical builds)."""
    from datasets import Dataset
    from datasets.arrow_reader import ArrowReader

    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return Dataset(ArrowReader.read_table(str(path)), fingerprint=h.hexdigest()[:16])


class _Views:
    """One Arrow stream file per (view, split) under ``scratch``, saved as ``datasets`` folders at the end."""

    def __init__(self, scratch: Path):
        scratch.mkdir(parents=True, exist_ok=True)
        self.scratch, self.writers, self.rows = scratch, {}, Counter()

    def write(self, key: tuple[str, str], batch: pa.RecordBatch) -> None:
        if key not in self.writers:
            sink = pa.OSFile(str(self.scratch / f"{key[0]}-{key[1]}.arrow"), "wb")
            self.writers[key] = (sink, pa.ipc.new_stream(sink, batch.schema))
        self.writers[key][1].write_batch(batch)
        self.rows[key] += batch.num_rows

    def save(self, out: Path) -> dict:
        from datasets import DatasetDict

        from data_recipes.writer import _dataset, _quiet_progress

        for sink, writer in self.writers.values():
            writer.close()
            sink.close()
        report = {}
        with _quiet_progress():
            for v, features in FEATURES.items():
                parts = {}
                for sp in SPLITS:
                    path = self.scratch / f"{v}-{sp}.arrow"
                    parts[sp] = _mapped(path) if (v, sp) in self.writers else _dataset([], features)
                dd = DatasetDict(parts)
                dd.save_to_disk(str(out / v), num_shards={sp: 1 for sp in SPLITS if not self.rows[(v, sp)]})
                report[v] = {sp: self.rows[(v, sp)] for sp in SPLITS}
        return report


def build_streaming(cfg: RecipeConfig, out: Path, tok) -> dict:
    """Write a streaming build into ``out``; return the manifest fields that depend on the rows."""
    from data_recipes.writer import percentiles

    check_config(cfg)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    files = {sp: (out / "samples" / f"{sp}.jsonl").open("w", encoding="utf-8") for sp in SPLITS}
    rej_file = (out / "rejects.jsonl").open("w", encoding="utf-8")
    views, tally, rejected = _Views(out / ".scratch"), Tally(dedup=cfg.dedup), Counter()
    try:
        for res in run_ordered(cfg, tok):
            for r in res["rejects"]:
                rej_file.write(json.dumps(r, ensure_ascii=False) + "\n")
                rejected[r["field"]] += 1
            kept = [False] * len(res["rows"])
            admitted = [False] * len(res["rows"])
            for j, info in enumerate(res["rows"]):
                owner = info["owner"]
                admitted[j] = admitted[owner] if owner is not None else tally.admit(info) is None
                if not admitted[j]:
                    continue
                if info["n"] > cfg.max_length:
                    err = DataError(
                        info["where"],
                        "messages",
                        f"sample has {info['n']} tokens > max_length {cfg.max_length}",
                    )
                    if cfg.on_error == "raise":
                        raise err
                    rej_file.write(
                        json.dumps({**err.as_reject(), "uuid": info["uuid"]}, ensure_ascii=False) + "\n"
                    )
                    rejected["messages"] += 1
                    continue
                kept[j] = True
                tally.keep(info)
                files[info["split"]].write(info["line"] + "\n")
            for key, (batch, owners) in res["batches"].items():
                mask = pa.array([kept[o] for o in owners])
                if mask.true_count:
                    views.write(key, batch.filter(mask))
    finally:
        for fh in (*files.values(), rej_file):
            fh.close()
    for sp in SPLITS:
        if cfg.splits[sp] > 0 and not tally.by_split[sp]:
            raise DataError(
                f"recipe {cfg.name}",
                f"splits.{sp}",
                "empty split after checks; raise `total` or the fraction",
            )
    (out / "chat_template.jinja").write_text(getattr(tok, "chat_template", None) or "", encoding="utf-8")
    report = views.save(out)
    shutil.rmtree(out / ".scratch", ignore_errors=True)
    target = allocate(cfg.total, {f"domain:{d}": w for d, w in cfg.domains.items() if w > 0})
    return {
        "counts": {
            "total": len(tally.lens),
            "by_category": dict(sorted(tally.by_category.items())),
            "by_reasoning": dict(sorted(tally.by_reasoning.items())),
            "truncated": tally.counts["truncated"],
            "by_split": {sp: tally.by_split[sp] for sp in SPLITS},
        },
        "rejected": {"count": sum(rejected.values()), "path": "rejects.jsonl", "by_field": dict(rejected)},
        "dropped": {
            "dedup": {
                "exact": tally.counts["exact"],
                "normalized": tally.counts["normalized"],
                "by_category": dict(sorted(tally.dedup_by_category.items())),
            },
            "decontam": dict(tally.decontam),
        },
        "mixture": {"target": target, "sources": {f"source:{i}": s.path for i, s in enumerate(cfg.sources)}},
        "off_pairs": tally.counts["off_pairs"],
        "truncation": {
            "count": tally.counts["truncated"],
            "budget_range": list(cfg.truncate_budget),
            "budgets": percentiles(tally.budgets),
        },
        "prompts_by_split": {sp: tally.prompts[sp] for sp in SPLITS},
        "token_lengths": {
            "sample": percentiles(list(tally.lens)),
            "reasoning": percentiles(list(tally.rlens)),
        },
        "views": report,
        "streaming": True,
    }
