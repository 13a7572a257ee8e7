"""Does the recipe make a real model better? ``nano2_smollm`` on SmolLM2-135M-Instruct, measured.

    python bench/real_model.py [--run-dir runs/real] [--no-run] [--replicates DIR ...]
                               [--variants DIR ...] [overrides ...]

Runs ``posttrain run pipeline=nano2_smollm run_dir=<run-dir> [overrides]`` (finished stages are
skipped, so a second call only re-reads), then reads what its eval stage measured: every target
(base = the imported model with the Nano 2 template, SFT, DPO, final = after GRPO) on the same
held-out prompts, greedy, in the same run. Accuracy is the mean verifier score with a 95 % interval
(Wilson for 0/1 scores, else bootstrap); ``grpo_gain`` is final minus DPO (GRPO's input) per domain
and mode, with a paired bootstrap interval over the same prompts; ``budget`` holds the budget sweep
of the final model (tokens saved and accuracy lost at each thinking budget vs unlimited). Every
paired difference also carries its strict-accuracy delta (correct *and* well-formed for the mode).
``--replicates`` reads GRPO-only reruns of the same recipe with another seed (pooled into
``grpo_pooled``); ``--variants`` reads GRPO-only runs of another GRPO recipe (reported, not pooled).

Writes ``bench/results/real_model.json`` and ``real_model.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
STAGES = {"base": "init", "sft": "sft", "dpo": "dpo", "final": "model"}
DOMAINS = ("math", "code", "tool_calling", "safety", "chat")


def _eval_dir(run_dir: Path) -> Path:
    found = sorted(run_dir.glob("*_eval/eval.json"))
    if not found:
        raise SystemExit(f"bench/real_model.py: no */eval.json under {run_dir}; the pipeline did not finish")
    return found[-1].parent


def stage_summary(res: dict[str, Any]) -> dict[str, Any]:
    """accuracy + ci over every (prompt, mode), and per domain (modes pooled) and per domain/mode."""
    by_domain = {}
    for d in DOMAINS:
        modes = {
            m: {
                "accuracy": res[f"{d}/{m}/accuracy"],
                "ci": res[f"{d}/{m}/accuracy_ci"],
                "n": res[f"{d}/{m}/n"],
            }
            for m in ("on", "off", "budget")
            if f"{d}/{m}/accuracy" in res
        }
        if modes:
            n = sum(v["n"] for v in modes.values())
            by_domain[d] = {
                "accuracy": sum(v["accuracy"] * v["n"] for v in modes.values()) / n,
                "n": n,
                "modes": modes,
            }
    return {
        "accuracy": res["all/all/accuracy"],
        "ci": res["all/all/accuracy_ci"],
        "n": res["all/all/n"],
        "by_mode": {
            m: {"accuracy": res[f"accuracy_{m}"], "ci": res[f"accuracy_ci_{m}"]}
            for m in ("on", "off", "budget")
            if f"accuracy_{m}" in res
        },
        "by_domain": by_domain,
    }


def gains(items: dict[str, list[dict]], new: str, old: str) -> dict[str, Any]:
    """Paired ``new - old`` accuracy per domain (its on+off prompts pooled), overall, and per slice;
    ``strict`` holds the same for strict accuracy (correct *and* well-formed for the mode)."""
    from posttrain.evals.report import deltas

    pair = {new: items[new], old: items[old]}
    d = deltas(pair, model=new)[old]
    strict = deltas(pair, model=new, metric="strict")[old]
    out: dict[str, Any] = {}
    for dom in ("all", *DOMAINS):
        v = d.get(f"{dom}/all")
        if v:
            sv = strict[f"{dom}/all"]
            out[dom] = {**v, "excludes_0": v["ci"][0] > 0 or v["ci"][1] < 0}
            out[dom]["strict"] = {"delta": sv["delta"], "ci": sv["ci"]}
    out["slices"] = d
    out["slices_strict"] = strict
    return out


def _gain_rows(prefix: str, gain: dict[str, Any]) -> list[str]:
    rows = []
    for dom, v in gain.items():
        if not dom.startswith("slices"):
            yes = "**yes**" if v["excludes_0"] else "no"
            sv = v.get("strict")
            strict = f" {sv['delta']:+.3f} {_ci(sv['ci'])} |" if sv else " |"
            rows.append(f"| {prefix}{dom} | {v['delta']:+.3f} | {_ci(v['ci'])} | {v['n']} | {yes} |{strict}")
    return rows


COMPARISONS = {
    "sft_gain": ("sft", "init"),
    "dpo_change": ("dpo", "sft"),
    "grpo_gain": ("model", "dpo"),
    "recipe_gain": ("model", "init"),
}


def _items(ev: Path) -> dict[str, list[dict]]:
    items: dict[str, list[dict]] = {}
    for line in (ev / "scores.jsonl").read_text().splitlines():
        it = json.loads(line)
        items.setdefault(it["target"], []).append(it)
    return items


def replicate(run_dir: Path) -> dict[str, Any]:
    """GRPO's gain (final - DPO) in another run dir: the same recipe with another ``seed``."""
    from omegaconf import OmegaConf

    from posttrain.pipeline.rundir import RunDir

    ev = _eval_dir(run_dir)
    rd = RunDir(run_dir)
    grpo = [m for m in rd.done() if m.kind == "grpo"]
    hydra_cfg = run_dir / ".hydra" / "config.yaml"  # what `posttrain run` composed for this run dir
    seed = OmegaConf.load(hydra_cfg).get("seed") if hydra_cfg.exists() else None
    stage_cfg = next(
        (e.dir / "config.json" for e in rd.stages() if e.manifest and e.manifest.kind == "grpo"), None
    )
    grpo_cfg = json.loads(stage_cfg.read_text()) if stage_cfg and stage_cfg.exists() else {}
    if grpo_cfg.get("seed") is not None:
        seed = grpo_cfg["seed"]  # stage.grpo.seed: a GRPO-only replicate
    items = _items(ev)
    return {
        "run_dir": str(run_dir),
        "seed": seed,
        "recipe": {k: grpo_cfg.get(k) for k in ("rewards", "reward_weights", "scale_rewards")},
        "grpo_metrics": grpo[-1].metrics if grpo else {},
        "grpo_gain": gains(items, "model", "dpo"),
        "_items": items,
    }


def pooled_gain(runs: list[dict[str, list[dict]]]) -> dict[str, Any]:
    """GRPO's gain averaged over seeds: per (prompt, mode), the mean over runs of the final model's
    score minus the (shared) DPO score, with the paired bootstrap interval over prompts. It estimates
    the recipe's expected effect; each seed's own interval says how reliably one run shows it."""
    from posttrain.evals.stats import paired_diff

    dpo = {(it["uuid"], it["mode"]): it for it in runs[0]["dpo"]}
    finals = [{(it["uuid"], it["mode"]): it["score"] for it in r["model"]} for r in runs]
    keys = [k for k in dpo if all(k in f for f in finals)]
    out = {}
    for dom in ("all", *DOMAINS):
        ks = [k for k in keys if dom == "all" or dpo[k]["category"] == dom]
        if ks:
            a = [sum(f[k] for f in finals) / len(finals) for k in ks]
            d, lo, hi = paired_diff(a, [dpo[k]["score"] for k in ks])
            out[dom] = {"delta": d, "ci": [lo, hi], "n": len(ks), "seeds": len(finals)}
            out[dom]["excludes_0"] = lo > 0 or hi < 0
    return out


def collect(run_dir: Path) -> dict[str, Any]:
    from posttrain.pipeline.rundir import RunDir

    ev = _eval_dir(run_dir)
    results = json.loads((ev / "eval.json").read_text())
    manifests = {m.stage: m for m in RunDir(run_dir).done() if m.kind != "init"}
    out: dict[str, Any] = {"run_dir": str(run_dir), "n_prompts": results["model"]["n_prompts"]}
    out["stages"] = {k: stage_summary(results[v]) for k, v in STAGES.items() if v in results}
    items = _items(ev)
    for key, (new, old) in COMPARISONS.items():
        if new in items and old in items:
            out[key] = gains(items, new, old)
    budget = ev / "budget" / "budget.json"
    out["budget"] = json.loads(budget.read_text())["rows"] if budget.exists() else []
    out["stage_wall_s"] = {n: round(m.wall_s, 1) for n, m in manifests.items() if m.wall_s}
    out["stage_metrics"] = {n: m.metrics for n, m in manifests.items()}
    return out


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def to_markdown(r: dict[str, Any]) -> str:
    st = r["stages"]
    cols = [k for k in STAGES if k in st]
    lines = [
        f"# nano2_smollm on SmolLM2-135M-Instruct: {r['n_prompts']} held-out prompts",
        "",
        "| accuracy | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
        "| all | " + " | ".join(f"{st[c]['accuracy']:.3f} {_ci(st[c]['ci'])}" for c in cols) + " |",
    ]
    for m in ("on", "off"):
        if all(m in st[c]["by_mode"] for c in cols):
            lines.append(
                f"| mode {m} | "
                + " | ".join(
                    f"{st[c]['by_mode'][m]['accuracy']:.3f} {_ci(st[c]['by_mode'][m]['ci'])}" for c in cols
                )
                + " |"
            )
    for d in DOMAINS:
        if all(d in st[c]["by_domain"] for c in cols):
            lines.append(
                f"| {d} | " + " | ".join(f"{st[c]['by_domain'][d]['accuracy']:.3f}" for c in cols) + " |"
            )
    lines += [
        "",
        "## Paired differences on the same prompts (95 % bootstrap CI)",
        "",
        "Strict = correct *and* well-formed for the mode (a `/no_think` answer that reasons and closes",
        "`</think>` again counts on accuracy, not on strict).",
        "",
        "| comparison | domain | delta | CI | n | excludes 0 | strict delta [CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, (a, b) in COMPARISONS.items():
        lines += _gain_rows(f"{key} ({a} - {b}) | ", r.get(key, {}))
    if r["budget"]:
        lines += [
            "",
            "## Budget sweep (final model, /think, all domains)",
            "",
            "| budget | accuracy | accuracy lost | total tokens | tokens saved | well-formed |",
            "|---|---|---|---|---|---|",
        ]
        for row in (x for x in r["budget"] if x["domain"] == "all"):
            b = "none" if row["budget"] is None else row["budget"]
            saved = f"{row['tokens_saved_frac']:.0%}" if row["tokens_saved_frac"] is not None else "-"
            lost = f"{row['accuracy_lost']:+.3f}" if row["accuracy_lost"] is not None else "-"
            lines.append(
                f"| {b} | {row['accuracy']:.3f} | {lost} | {row['mean_total_tokens']:.1f} | {saved} | "
                f"{row['well_formed']:.2f} |"
            )
    reps = [("replicate", x) for x in r.get("grpo_replicates", [])]
    for what, rep in reps + [("variant", x) for x in r.get("grpo_variants", [])]:
        rc = rep.get("recipe") or {}
        recipe = f"rewards {rc.get('rewards')} x {rc.get('reward_weights')}, scale_rewards {rc.get('scale_rewards')}"
        lines += ["", f"## GRPO {what}: `{rep['run_dir']}` (seed {rep['seed']}; {recipe}), final - DPO", ""]
        lines += ["| domain | delta | CI | n | excludes 0 | strict delta [CI] |", "|---|---|---|---|---|---|"]
        lines += _gain_rows("", rep["grpo_gain"])
    if r.get("grpo_pooled"):
        n = next(iter(r["grpo_pooled"].values()))["seeds"]
        lines += ["", f"## GRPO gain averaged over {n} seeds (same DPO input, same prompts)", ""]
        lines += ["| domain | delta | CI | n | excludes 0 |", "|---|---|---|---|---|"]
        for dom, v in r["grpo_pooled"].items():
            yes = "**yes**" if v["excludes_0"] else "no"
            lines.append(f"| {dom} | {v['delta']:+.3f} | {_ci(v['ci'])} | {v['n']} | {yes} |")
    lines += ["", "Stage wall times (s): " + ", ".join(f"{k} {v}" for k, v in r["stage_wall_s"].items())]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", default="runs/real")
    ap.add_argument("--no-run", action="store_true", help="Only read an existing run.")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument(
        "--replicates",
        nargs="*",
        default=[],
        help="Other run dirs of the same recipe with another seed (only their GRPO gain is read).",
    )
    ap.add_argument(
        "--variants",
        nargs="*",
        default=[],
        help="Run dirs of another GRPO recipe on the same DPO checkpoint (reported, not pooled).",
    )
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for the pipeline.")
    a = ap.parse_args()
    run_dir = Path(a.run_dir)
    t0 = time.time()
    if not a.no_run:
        cmd = [
            sys.executable,
            "-m",
            "posttrain.cli",
            "run",
            "pipeline=nano2_smollm",
            f"run_dir={run_dir}",
            *a.overrides,
        ]
        subprocess.run(cmd, check=True)
    r = collect(run_dir)
    if a.replicates:
        reps = [replicate(Path(d)) for d in a.replicates]
        r["grpo_pooled"] = pooled_gain([_items(_eval_dir(run_dir)), *(rep.pop("_items") for rep in reps)])
        r["grpo_replicates"] = reps
    if a.variants:  # another GRPO recipe on the same DPO input: reported beside, never pooled
        r["grpo_variants"] = [replicate(Path(d)) for d in a.variants]
        for v in r["grpo_variants"]:
            v.pop("_items")
    r |= {
        "command": " ".join(["python bench/real_model.py", *sys.argv[1:]]),
        "bench_wall_s": round(time.time() - t0, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "real_model.json").write_text(json.dumps(r, indent=2) + "\n")
    (out / "real_model.md").write_text(to_markdown(r))
    print(to_markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
