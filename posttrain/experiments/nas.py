"""``posttrain nas out=<dir>``: Nano 2's two-phase architecture search, run as one pipeline in ``out``.

The base pipeline (default ``nano2_compress``) supplies the model, the data, the teacher (its distill
stage's ``teacher``, e.g. ``sft``) and the prune / distill settings every candidate copies. Phase 1
appends, for each depth ``d``, stages ``prune_d<d>`` (depth only) and ``distill_d<d>``; phase 2 appends
``prune_<w>`` and ``distill_<w>`` for each admitted width ``w`` at the chosen depth (``compress.nas``).
Every candidate's distill runs ``distill_steps`` steps with the same settings and data order, so
their held-out losses compare. Stage dirs keep their numbers when phase 2 is appended, and finished
stages are skipped by fingerprint: a rerun resumes. Writes ``nas.json`` and ``nas.md`` in ``out``.

Departures from Nano 2: each width candidate is pruned from the teacher in one shot at the chosen
depth (its depth scores are the teacher's, so the same layers go; Nano 2 re-scored after depth
pruning), and the ranking uses held-out loss rather than benchmark accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

from posttrain import PosttrainError
from posttrain.compress import nas
from posttrain.compress.nas import AXES, Width

PROG = "posttrain nas"


def _stage(cfg, base: str, name: str, **over: Any) -> None:
    node = OmegaConf.merge(cfg.stage[base], over)
    with open_dict(cfg):
        cfg.stage[name] = node


def base_config(a, extra: list[str]):
    """The base pipeline composed into ``a.out``, checked to have what the search copies."""
    from posttrain.config.compose import compose

    cfg = compose([f"pipeline={a.pipeline}", f"run_dir={a.out}", *extra])
    for key in ("prune", "distill"):
        if key not in cfg.stage or cfg.stage[key].get("kind") != key:
            raise PosttrainError(
                f"pipeline: {a.pipeline} has no stage.{key} of kind {key} for the search to copy"
            )
    teacher = cfg.stage.distill.teacher
    stages = list(cfg.pipeline.stages)
    if teacher not in stages:
        raise PosttrainError(f"stage.distill.teacher: {teacher!r} is not a stage of pipeline {a.pipeline}")
    with open_dict(cfg):
        cfg.pipeline.stages = stages[: stages.index(teacher) + 1]
        cfg.pipeline.claims = []
    return cfg, teacher


def add_candidate(cfg, a, teacher: str, tag: str, targets: dict[str, Any]) -> None:
    """``prune_<tag>`` (teacher -> targets) and ``distill_<tag>`` (its short distillation)."""
    widths = {k: None for k in AXES}
    _stage(cfg, "prune", f"prune_{tag}", input=teacher, drop_layers=[], **(widths | targets))
    steps = a.distill_steps
    over = dict(input=f"prune_{tag}", teacher=teacher, loss="kl", max_steps=steps, save_steps=steps)
    _stage(cfg, "distill", f"distill_{tag}", **over)
    with open_dict(cfg):
        cfg.pipeline.stages = [*cfg.pipeline.stages, f"prune_{tag}", f"distill_{tag}"]


def run(cfg) -> dict[str, Any]:
    """Run the pipeline (finished stages skipped); {stage: manifest}."""
    from posttrain.pipeline.runner import prepare, run_pipeline

    prep = prepare(cfg)
    try:
        return run_pipeline(cfg, prep)
    finally:
        if prep.lock is not None:
            prep.lock.close()


def _row(done: dict, tag: str) -> dict[str, Any]:
    p, d = done[f"prune_{tag}"].metrics, done[f"distill_{tag}"].metrics
    return {
        "name": tag,
        "params": p["params_after"],
        # a Llama layer is the pair *- to the memory planner (compress.memory.Arch)
        "pattern": p["kept"].get("hybrid_override_pattern") or "*-" * p["kept"]["num_layers"],
        "kept": p["kept"],
        "pruned_eval_loss": p["final_eval_loss"],
        "final_eval_loss": d["final_eval_loss"],
        "final_eval_kl": d["final_eval_kl"],
    }


def _throughput(path: Path, a) -> float:
    from posttrain.compress.throughput import decode_throughput
    from posttrain.models import load_model

    model = load_model(str(path))
    return decode_throughput(
        model, batch=a.throughput_batch, prompt_tokens=a.throughput_tokens, new_tokens=a.throughput_tokens
    )


def search(a, extra: list[str]) -> dict[str, Any]:
    """Both phases; the report that ``nas.json`` holds."""
    from transformers import AutoConfig

    from posttrain.compress.memory import arch_from_hf, plan_memory

    if not a.depths:
        raise PosttrainError(f"{PROG}: depths: empty list; e.g. depths=[6,7]")
    cfg, teacher = base_config(a, extra)
    for d in a.depths:
        add_candidate(cfg, a, teacher, f"d{d}", {"num_layers": d})
    done = run(cfg)
    phase1 = [_row(done, f"d{d}") | {"num_layers": d} for d in a.depths]
    best = nas.pick_depth(phase1)
    for r in phase1:
        r["picked"] = r is best

    teacher_ckpt = Path(done[teacher].checkpoint)
    base = arch_from_hf(AutoConfig.from_pretrained(teacher_ckpt))
    memory = {"context": a.context, "batch": a.batch}
    teacher_plan = plan_memory(base, budget_gib=1e9, **memory)
    budget = a.budget_gib if a.budget_gib is not None else a.budget_fraction * teacher_plan.total_gib
    grid = {"hidden_size": a.hidden_sizes, "intermediate_size": a.intermediate_sizes}
    grid |= {"mamba_num_heads": a.mamba_num_heads, "num_attention_heads": a.num_attention_heads}
    widths = nas.width_grid(grid)
    kept, rejected = nas.admit(
        base, best["pattern"], widths, budget_gib=budget, max_candidates=a.max_candidates, **memory
    )
    if not kept:
        raise PosttrainError(
            f"{PROG}: no width candidate fits {budget:.4g} GiB at context {a.context}; raise budget_gib or add smaller sizes"
        )
    for w, _ in kept:
        add_candidate(cfg, a, teacher, w.name(), {"num_layers": best["num_layers"], **w.targets()})
    done = run(cfg)
    teacher_tps = _throughput(teacher_ckpt, a)
    phase2 = []
    for w, plan in kept:
        row = _row(done, w.name()) | {"total_gib": plan.total_gib, "fits": plan.fits, **w.targets()}
        row["tokens_per_s"] = _throughput(Path(done[f"distill_{w.name()}"].checkpoint), a)
        row["speedup"] = row["tokens_per_s"] / teacher_tps
        phase2.append(row)
    return {
        "pipeline": a.pipeline,
        "teacher": {"stage": teacher, "params": teacher_plan.params, "total_gib": teacher_plan.total_gib,
                    "eval_loss": done[f"prune_d{a.depths[0]}"].metrics["initial_eval_loss"],
                    "tokens_per_s": teacher_tps},
        "memory": memory | {"budget_gib": budget},
        "distill_steps": a.distill_steps,
        "phase1": phase1,
        "depth": best["num_layers"],
        "phase2": nas.rank(phase2, a.tie_tolerance),
        "rejected": [{"name": w.name(), "total_gib": p.total_gib, "fits": p.fits} for w, p in rejected],
        "winner": None,
    }  # fmt: skip


def nas_main(argv: list[str]) -> int:
    """``posttrain nas out=<dir> [key=value ...] [-- hydra overrides]`` (``config.commands.NasConfig``)."""
    from posttrain.config.commands import NasConfig, parse_command

    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    a = parse_command(NasConfig, argv, PROG)
    if a is None:
        return 0
    report = search(a, extra)
    report["winner"] = report["phase2"][0]["name"]
    out = Path(a.out)
    (out / "nas.json").write_text(json.dumps(report, indent=2, default=str))
    md = nas.to_markdown(report)
    (out / "nas.md").write_text(md)
    print(md)
    return 0


__all__ = ["Width", "nas_main", "search"]
