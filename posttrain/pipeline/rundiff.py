"""Compare a recovered run with an unbroken one: which outputs differ, and why.

Compared, per stage (``00_init`` and ``pipeline.json`` order): every ``*.safetensors`` tensor of the
stage checkpoint, bit for bit; every other output file the reference manifest records (``files``),
byte for byte after replacing either run dir's path (eval's ``budget.json`` names its checkpoint); the manifest ``metrics``; and the per-step records
of ``metrics.jsonl``. Also the data (``data.files.json`` hashes).

Not compared: wall-clock figures (``*runtime``, ``*per_second``, ``step_time``, ``time``). A
difference in a stage that resumed from a trainer checkpoint is *explained* when the metric is
computed per ``train()`` call: a key of the reference's train summary (the ``metrics.jsonl`` record
with ``train_runtime``: HF's ``train_loss``, TRL's averages of ``entropy``, ``rewards/*``,
``logps/*``...) or one of ``PER_CALL``. These are not in the trainer checkpoint, so a resumed stage
reports them over the steps after the resume (none when the checkpoint was already at
``max_steps``). Every other difference is unexplained.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from posttrain.pipeline.rundir import RunDir

VOLATILE = re.compile(r"(runtime|per_second|preparation_time|step_time|^time)$")
PER_CALL = {
    "train_loss": "HF's train_loss averages the steps run in this train() call only",
    "entropy": "TRL's train-summary entropy averages the steps run in this process only",
    "mean_token_accuracy": "TRL's train-summary accuracy averages the steps run in this process only",
    "num_tokens": "TRL's token counter restarts at 0 in a new process (not in the trainer checkpoint)",
    "final_eval_num_tokens": "TRL reports its train token counter, which restarts at 0 in a new process",
    "resumed_from": "the stage resumed from a trainer checkpoint",
    "resumed_at_max_steps": "the trainer checkpoint was at max_steps: adopted without a train() call",
}
SUMMARY = "a train() summary metric, averaged over the steps run in that call (not in trainer checkpoints)"


@dataclass
class Difference:
    stage: str
    what: str
    ref: Any
    got: Any
    explanation: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _manifest(d: Path) -> dict[str, Any]:
    try:
        return json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def tensor_diffs(ref_ckpt: Path, got_ckpt: Path) -> list[str]:
    """Names of the tensors (or files) that are not bit-identical between two checkpoints."""
    import torch
    from safetensors.torch import load_file

    out = []
    for f in sorted(ref_ckpt.resolve().glob("*.safetensors")):
        g = got_ckpt.resolve() / f.name
        if not g.is_file():
            out.append(f"{f.name} (missing)")
            continue
        a, b = load_file(f), load_file(g)
        out += [f"{f.name}:{k}" for k in sorted(set(a) ^ set(b))]
        out += [f"{f.name}:{k}" for k in sorted(set(a) & set(b)) if not torch.equal(a[k], b[k])]
    return out


def _summary_keys(path: Path) -> set[str]:
    """The keys of the train-summary records (those with ``train_runtime``) of a ``metrics.jsonl``."""
    keys: set[str] = set()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "train_runtime" in rec:
                keys |= set(rec) - {"step", "time"}
    return keys


def _step_records(path: Path) -> dict[int, dict[str, Any]]:
    """Per-step log records (``loss``/``reward`` lines, not summaries) by step, volatile keys dropped."""
    out: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "train_runtime" in rec or not ({"loss", "reward"} & set(rec)):
            continue
        out[rec["step"]] = {k: v for k, v in rec.items() if not VOLATILE.search(k)}
    return out


def _unrooted(data: bytes, *runs: Path) -> bytes:
    """``data`` with either run dir's path replaced (a copied run's files may name the original)."""
    for run in runs:
        data = data.replace(str(run).encode(), b"<run>")
    return data


def compare_stage(ref: Path, got: Path, name: str) -> list[Difference]:
    rd, gd = ref / name, got / name
    rm, gm = _manifest(rd), _manifest(gd)
    stage = rm.get("stage", name)
    if gm.get("status") != "done":
        return [Difference(stage, "status", rm.get("status"), gm.get("status"))]
    diffs = []
    if (rd / "checkpoint").exists():
        bad = tensor_diffs(rd / "checkpoint", gd / "checkpoint")
        if bad:
            diffs.append(Difference(stage, "weights", "bit-identical", f"{len(bad)} differ: {bad[:3]}"))
    for rel, rec in (rm.get("files") or {}).items():
        if rel.startswith("checkpoint/") or rel == "metrics.jsonl" or "link" in rec:
            continue
        a, b = rd / rel, gd / rel
        if not b.is_file():
            diffs.append(Difference(stage, rel, "present", "missing"))
        elif _unrooted(a.read_bytes(), ref, got) != _unrooted(b.read_bytes(), ref, got):
            diffs.append(Difference(stage, rel, "bytes", "differ"))
    resumed = (gm.get("metrics") or {}).get("resumed_from")
    rmet, gmet = rm.get("metrics") or {}, gm.get("metrics") or {}
    summary = _summary_keys(rd / "metrics.jsonl")
    for k in sorted(set(rmet) | set(gmet)):
        if VOLATILE.search(k) or rmet.get(k) == gmet.get(k):
            continue
        why = PER_CALL.get(k) or (SUMMARY if k in summary else None)
        why = f"resumed from {resumed}: {why}" if resumed and why else None
        diffs.append(Difference(stage, f"metrics.{k}", rmet.get(k), gmet.get(k), why))
    rs, gs = _step_records(rd / "metrics.jsonl"), _step_records(gd / "metrics.jsonl")
    for step in sorted(set(rs) | set(gs)):
        if rs.get(step) != gs.get(step):
            diffs.append(Difference(stage, f"metrics.jsonl step {step}", rs.get(step), gs.get(step)))
    return diffs


def compare_runs(ref: str | Path, got: str | Path) -> list[Difference]:
    """Every difference between run dirs ``ref`` (unbroken) and ``got`` (see the module docstring)."""
    ref, got = Path(ref), Path(got)
    diffs: list[Difference] = []
    rdata, gdata = ref / "data.files.json", got / "data.files.json"
    if rdata.exists() and (
        not gdata.exists() or json.loads(rdata.read_text())["files"] != json.loads(gdata.read_text())["files"]
    ):
        diffs.append(Difference("data", "data.files.json", "same hashes", "differ"))
    for name in RunDir(ref).order():
        diffs += compare_stage(ref, got, name)
    return diffs
