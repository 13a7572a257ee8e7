"""Paired held-out deltas between two eval runs' items, when their checkpoints' evals live in different run
dirs (e.g. a GRPO replicate whose DPO input is bit-identical to another run's evaluated DPO).

    python bench/paired_delta.py --model runs/r9/05_eval/samples.jsonl \\
        --baseline runs/r8/05_eval/scores.jsonl --baseline-target dpo --out bench/results/grpo_seed1

Items are matched by (uuid, mode) through ``posttrain.evals.report.deltas`` (paired bootstrap, 95 %).
Check first that the baseline checkpoints are the same bytes (``sha256sum``), or the pairing means nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SLICES = ("math/all", "math/on", "math/off", "all/all", "all/on", "all/off")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="samples.jsonl or scores.jsonl with the model's items")
    ap.add_argument("--model-target", default="model")
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--baseline-target", default="dpo")
    ap.add_argument("--out", required=True, help="path prefix for .json")
    a = ap.parse_args()
    from posttrain.evals.report import deltas

    def items(path: str, target: str) -> list[dict]:
        rows = [json.loads(ln) for ln in open(path)]
        return [r for r in rows if r.get("target", target) == target]

    model, base = items(a.model, a.model_target), items(a.baseline, a.baseline_target)
    res: dict = {
        "model": a.model,
        "baseline": f"{a.baseline}:{a.baseline_target}",
        "n": [len(model), len(base)],
    }
    for metric in ("accuracy", "strict"):
        d = deltas({"model": model, "base": base}, metric=metric)["base"]
        res[metric] = {
            k: {"delta": round(d[k]["delta"], 4), "ci": [round(x, 4) for x in d[k]["ci"]]} for k in SLICES
        }
    Path(a.out + ".json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
