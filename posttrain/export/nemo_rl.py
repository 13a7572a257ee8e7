"""Write one NeMo-RL job (config, data, command) for a posttrain SFT, DPO or GRPO stage.

A job directory holds:
- ``config.yaml``: a child of NeMo-RL's example config for the algorithm (``nemo_rl_map``);
- ``data/``: the stage's data in the formats their loaders take:
  - SFT: ``openai_format`` JSONL (``messages`` with ``reasoning_content``, ``tools``), rendered by our
    chat template (``policy.tokenizer.chat_template`` points at the run's ``chat_template.jinja``);
  - DPO: ``PreferenceDataset`` JSONL (``context`` + ranked ``completions``) from the pairs our
    ``preference`` stage mined on-policy (NeMo-RL cannot mine them);
  - GRPO: ``ResponseDataset`` JSONL (``input`` = the user turn, ``output`` = the reference answer), one
    file per reasoning mode with a ``system_prompt_file`` holding the flag, for the ``math`` env;
- ``command.sh``: runs ``examples/run_<algo>.py`` and converts the last step to a Hugging Face
  checkpoint in ``hf/`` (``convert_dcp_to_hf.py``), which the next job (and posttrain) reads;
- ``mapping.json``: every mapped and every dropped config field, and every row the data left out
  (with the reason; the rows themselves are in ``data/skipped.jsonl``).

Departures, all listed in ``mapping.json``: only math prompts go to GRPO (their math environment has
no code, tool or chat verifier), and it scores correctness without our format gate; a rejected DPO
completion that never closed its trace is re-rendered closed by their template.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from posttrain import PosttrainError
from posttrain.export.nemo_rl_map import ALGOS, NotExportable, map_stage, schema
from posttrain.reasoning import FLAG_OFF, FLAG_ON, THINK_CLOSE

DATA_COMMON = {
    "max_input_seq_length": "${policy.max_total_sequence_length}",
    "shuffle": True,
    "num_workers": 1,
}
RUN_SCRIPT = {"sft": "examples/run_sft.py", "dpo": "examples/run_dpo.py", "grpo": "examples/run_grpo.py"}


def _messages(msgs: list[dict]) -> list[dict]:
    """Messages without the None fields the Arrow views carry (NeMo-RL's template sees what we send)."""
    return [{k: v for k, v in m.items() if v is not None} for m in msgs]


def _jsonl(path: Path, rows: list[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(rows)


def _view(data_dir: Path, view: str, split: str, categories=()) -> list[dict]:
    from datasets import load_from_disk

    ds = load_from_disk(str(data_dir / view))[split]
    if categories:
        wanted = set(categories)
        ds = ds.filter(lambda c: c in wanted, input_columns="category")
    return ds.to_list()


def sft_data(scfg: Any, data_dir: Path, out: Path) -> tuple[dict, dict]:
    counts: dict[str, int] = {}
    for split in ("train", "validation"):
        rows = _view(data_dir, "sft", split, scfg.categories)
        if split == "train" and scfg.only_truncated:
            rows = [r for r in rows if r.get("truncated")]
        recs = [
            {
                "messages": _messages(r["messages"]),
                **({"tools": json.loads(r["tools"])} if r.get("tools") else {}),
            }
            for r in rows
        ]
        counts[split] = _jsonl(out / f"{split}.jsonl", recs)
    entry = {"dataset_name": "openai_format", "chat_key": "messages", "tool_key": "tools"}
    data = {
        "train": {**entry, "data_path": str(out / "train.jsonl")},
        "validation": {**entry, "data_path": str(out / "validation.jsonl")},
        "add_bos": False,  # the template renders every turn boundary itself
        "add_eos": False,
        "add_generation_prompt": False,
        "default": {"prompt_file": None, "system_prompt_file": None, "processor": "sft_processor"},
    }
    return data, counts


def _assistant(text: str, reasoning: str) -> list[dict]:
    from posttrain.rewards.format import reasoning_on, split_completion

    if not reasoning_on(reasoning):
        return [{"role": "assistant", "content": text}]
    p = split_completion(text, reasoning)
    return [{"role": "assistant", "content": p.answer, "reasoning_content": p.reasoning}]


def dpo_data(pairs_dir: Path, data_dir: Path, tok: Any, out: Path) -> tuple[dict, dict]:
    """Pairs (rendered prompt, completion texts) back to messages: a pair's prompt is matched to the RL
    view row that renders to it; an unmatched one is skipped and counted."""
    from datasets import load_from_disk

    from posttrain.inference.generate import render_prompts

    rows = _view(data_dir, "rl", "train")
    by_text = dict(zip(render_prompts(tok, [r["prompt"] for r in rows]), rows))
    recs, skipped, unclosed = [], [], 0
    for p in load_from_disk(str(pairs_dir)).to_list():
        row = by_text.get(p["prompt"])
        if row is None:
            skipped.append({**p, "why": "prompt matches no RL-view row"})
            continue
        unclosed += int(p["reasoning"] == "on" and THINK_CLOSE not in p["rejected"])
        recs.append(
            {
                "context": _messages(row["prompt"]),
                "completions": [
                    {"rank": 0, "completion": _assistant(p["chosen"], p["reasoning"])},
                    {"rank": 1, "completion": _assistant(p["rejected"], p["reasoning"])},
                ],
            }
        )
    if not recs:
        raise PosttrainError(f"NeMo-RL DPO export: none of the pairs in {pairs_dir} matched the RL view")
    n_val = max(1, len(recs) // 20)  # our DPO has no validation split; NeMo-RL wants one
    counts = {
        "train": _jsonl(out / "train.jsonl", recs[n_val:] or recs),
        "validation": _jsonl(out / "validation.jsonl", recs[:n_val]),
    }
    counts |= {"skipped": _jsonl(out / "skipped.jsonl", skipped), "rejected_unclosed": unclosed}
    entry = {"dataset_name": "PreferenceDataset"}
    data = {
        "train": {**entry, "data_path": str(out / "train.jsonl")},
        "validation": {**entry, "data_path": str(out / "validation.jsonl")},
    }
    return data, counts


def _response_rows(rows: list[dict], skipped: list[dict]) -> dict[str, list[dict]]:
    """Math rows by mode as ``{"input", "output"}``; a row that is not math, or whose system turn holds
    more than the reasoning flag, goes to ``skipped``."""
    by_mode: dict[str, list[dict]] = {"on": [], "off": []}
    for r in rows:
        turns = {m["role"]: m["content"] for m in r["prompt"]}
        system = (turns.get("system") or "").strip()
        if r["category"] != "math":
            skipped.append({"uuid": r["uuid"], "category": r["category"], "why": "no NeMo-RL math verifier"})
        elif system not in ("", FLAG_ON, FLAG_OFF) or len(r["prompt"]) > 2:
            skipped.append(
                {"uuid": r["uuid"], "category": r["category"], "why": "system turn beyond the flag"}
            )
        else:
            answer = json.loads(r["metadata"])["answer"]
            by_mode[r["reasoning"]].append({"input": turns["user"], "output": str(answer), "uuid": r["uuid"]})
    return by_mode


def grpo_data(scfg: Any, data_dir: Path, seed: int, out: Path) -> tuple[dict, dict]:
    """The GRPO stage's prompt stream (its categories, shuffle seed, ``max_prompts`` and ``off_fraction``
    re-flagging), split by mode."""
    from datasets import load_from_disk

    from posttrain.stages.grpo import mix_modes

    ds = load_from_disk(str(data_dir / "rl"))["train"]
    if scfg.categories:
        wanted = set(scfg.categories)
        ds = ds.filter(lambda c: c in wanted, input_columns="category")
    ds = ds.shuffle(seed=seed)
    if scfg.max_prompts:
        ds = ds.select(range(min(scfg.max_prompts, len(ds))))
    if scfg.off_fraction is not None:
        ds = mix_modes(ds, scfg.off_fraction)
    skipped: list[dict] = []
    splits = {
        "train": _response_rows(ds.to_list(), skipped),
        "validation": _response_rows(_view(data_dir, "rl", "validation", ["math"]), skipped),
    }
    (out / "think.txt").parent.mkdir(parents=True, exist_ok=True)
    (out / "think.txt").write_text(FLAG_ON)
    (out / "no_think.txt").write_text(FLAG_OFF)
    data: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for split, by_mode in splits.items():
        entries = []
        for mode, rows in by_mode.items():
            if not rows:
                continue
            path = out / f"{split}_{mode}.jsonl"
            counts[f"{split}_{mode}"] = _jsonl(path, rows)
            prompt_file = out / ("think.txt" if mode == "on" else "no_think.txt")
            entries.append(
                {
                    "dataset_name": "ResponseDataset",
                    "data_path": str(path),
                    "input_key": "input",
                    "output_key": "output",
                    "system_prompt_file": str(prompt_file),
                }
            )
        data[split] = entries
    if not data["train"]:
        raise PosttrainError("NeMo-RL GRPO export: no math prompts in the stage's stream")
    counts["skipped"] = _jsonl(out / "skipped.jsonl", skipped)
    data["default"] = {
        "prompt_file": None,
        "system_prompt_file": None,
        "processor": "math_hf_data_processor",
        "env_name": "math",
    }
    data["use_multiple_dataloader"] = False
    return data, counts


def command(algo: str, job_dir: Path, nemo_rl_dir: str) -> str:
    """The job's driver script: train, then convert the last step's DCP weights to ``hf/``."""
    q = shlex.quote
    cfg, results, hf = q(str(job_dir / "config.yaml")), q(str(job_dir / "results")), q(str(job_dir / "hf"))
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            "set -euo pipefail",
            f'cd "${{NEMO_RL_DIR:-{nemo_rl_dir}}}"',
            f"uv run {RUN_SCRIPT[algo]} --config {cfg}",
            f"last=$(ls -d {results}/step_* | sort -t_ -k2 -n | tail -1)",
            'uv run examples/converters/convert_dcp_to_hf.py --config "$last/config.yaml" '
            f'--dcp-ckpt-path "$last/policy/weights" --hf-ckpt-path {hf}',
            "",
        ]
    )


def write_job(
    kind: str,
    name: str,
    scfg: Any,
    *,
    model_path: str,
    data_dir: Path,
    job_dir: Path,
    seed: int,
    nemo_rl_dir: str,
    world: int = 1,
    dtype: str = "float32",
    cluster: dict[str, int] | None = None,
    pairs_dir: Path | None = None,
    tokenizer: Any = None,
    model_type: str | None = None,
    wandb_project: str = "posttrain",
) -> dict[str, Any]:
    """Write ``job_dir`` for stage ``name``; returns its summary (also ``mapping.json``)."""
    job = map_stage(kind, scfg, world, dtype)
    algo = ALGOS[kind]
    out = job_dir / "data"
    if kind == "sft":
        data, counts = sft_data(scfg, data_dir, out)
    elif kind == "dpo":
        if pairs_dir is None or not (pairs_dir / "dataset_info.json").exists():
            raise NotExportable(
                f"stage {name}: its pairs come from stage {scfg.dataset_from} (on-policy mining, posttrain "
                f"only), and {pairs_dir} holds none yet; run that stage first"
            )
        data, counts = dpo_data(pairs_dir, data_dir, tokenizer, out)
    else:
        data, counts = grpo_data(scfg, data_dir, seed, out)
        job.values["grpo.seed"] = seed
    base = schema()["configs"][algo]["base"]
    job.values[f"{algo}.seed"] = seed
    job.values |= {
        "policy.model_name": model_path,
        "policy.tokenizer.name": model_path,
        "policy.tokenizer.chat_template": str(data_dir / "chat_template.jinja"),
        "checkpointing.checkpoint_dir": str(job_dir / "results"),
        "logger.log_dir": str(job_dir / "logs"),
        "logger.wandb.project": wandb_project,
        "logger.wandb.name": name,
        "cluster.gpus_per_node": int((cluster or {}).get("gpus_per_node", 1)),
        "cluster.num_nodes": int((cluster or {}).get("num_nodes", 1)),
    }
    if model_type == "nemotron_h":  # NeMo-RL's own Nano-v2 recipes set these
        job.values["policy.dtensor_cfg.automodel_kwargs.force_hf"] = True
        if kind == "grpo":
            job.values["policy.generation.vllm_kwargs.mamba_ssm_cache_dtype"] = "float32"
    job.check_keys(name)
    tree = job.nested()
    # ``_override_`` replaces the example's whole data section (a merge would keep its dataset's keys)
    tree["data"] = {"_override_": True, **DATA_COMMON, **data}
    config = {"defaults": f"{nemo_rl_dir}/{base}", **tree}
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (job_dir / "command.sh").write_text(command(algo, job_dir, nemo_rl_dir))
    (job_dir / "command.sh").chmod(0o755)
    summary = {
        "stage": name,
        "kind": kind,
        "algorithm": algo,
        "base_config": base,
        "schema": schema()["source"],
        "input_checkpoint": model_path,
        "output_checkpoint": str(job_dir / "hf"),
        "data": counts,
        "mapped": job.mapped,
        "dropped": job.dropped,
        "caveats": job.caveats,
    }
    (job_dir / "mapping.json").write_text(json.dumps(summary, indent=2))
    return summary
