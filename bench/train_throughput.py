"""SFT throughput, posttrain against plain TRL defaults: real (non-pad) tokens/s and MFU, one run.

    python bench/train_throughput.py [--quick] [--steps 30] [--work runs/bench_train_throughput]

The nano2_tiny demo's init checkpoint and ``sft`` train view (built once in ``--work`` by
``posttrain run pipeline=nano2_tiny pipeline.stages=[sft] stage.sft.max_steps=1``), then three arms,
each in its own process, same model, data, batch (8), learning rate and steps:

* ``posttrain``: ``packing_strategy=bfd`` (what ``auto`` picks): padding-free packing into rows
  of 256 tokens with the sample boundaries kept (``posttrain.models.packing``: the Mamba conv and
  scan reset at each sample, SDPA run per sample), and the LM head applied only where there is a
  label (``loss_head=labelled``).
* ``wrapped``: the previous default packing, concatenate and cut at 256 (samples see each other),
  with the same head.
* ``trl_defaults``: ``SFTTrainer`` with its defaults (no packing, each batch padded to its longest).

Tokens are the Trainer's ``num_input_tokens_seen`` with ``non_padding``; the rate is taken from the
end of step 2 to the last step (warm-up excluded). MFU counts the FLOPs the objective needs, the same
for every arm: 6 · (N_body · real tokens/s + N_head · labelled tokens/s), N_body the weights of the
body's ``nn.Linear`` layers and N_head the LM head's (embedding lookups, convs, the Mamba scan and
attention scores are left out, so it undercounts a little), over the best fp32 matmul rate measured
in this run with the same threads. Writes ``bench/results/train_throughput.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
ARMS = ("posttrain", "wrapped", "trl_defaults")


def matmul_peak(n: int = 1024, reps: int = 8, trials: int = 5) -> float:
    """Best fp32 matmul FLOP/s over ``trials`` timings of ``reps`` n x n products."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = 0.0
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
    return best


def linear_params(model) -> tuple[int, int]:
    """(weights of the ``nn.Linear`` layers of the body, weights of the LM head)."""
    import torch

    head = model.get_output_embeddings().weight.numel()
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)) - head, head


def counting(trainer_cls, labelled: list[int]):
    """``trainer_cls`` that records each training step's labelled (target) tokens."""

    class Counting(trainer_cls):
        def compute_loss(self, model, inputs, *args, **kwargs):
            if model.training:
                labelled.append(int((inputs["labels"][:, 1:] != -100).sum()))
            return super().compute_loss(model, inputs, *args, **kwargs)

    return Counting


def run_arm(arm: str, work: Path, steps: int) -> dict:
    """One arm, in this process: train ``steps`` steps and time them."""
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from posttrain.models import packing
    from posttrain.stages import sft

    ckpt = str(work / "00_init" / "checkpoint")
    model, tok = AutoModelForCausalLM.from_pretrained(ckpt), AutoTokenizer.from_pretrained(ckpt)
    train = load_from_disk(str(work / "data" / "sft"))["train"]
    train = train.remove_columns([c for c in train.column_names if c not in ("messages", "tools")])
    marks: list[tuple[float, int]] = []
    labelled: list[int] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks.append((time.perf_counter(), state.num_input_tokens_seen))

    args = {
        "max_steps": steps,
        "per_device_train_batch_size": 8,
        "learning_rate": 3e-3,
        "assistant_only_loss": True,
        "include_num_input_tokens_seen": "non_padding",
        "save_strategy": "no",
        "logging_steps": steps,
        "report_to": [],
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
    }
    trainer_cls, extra = SFTTrainer, {}
    if arm != "trl_defaults":
        strategy = sft.packing_strategy("bfd" if arm == "posttrain" else "wrapped")
        args |= {"packing": True, "packing_strategy": strategy, "max_length": 256}
        if strategy == "bfd":
            packing.install()
            packing.use_varlen_attention(model)
        trainer_cls, extra = sft.SFTTrainer, {"labelled_head": sft.loss_head("auto") == "labelled"}
    with tempfile.TemporaryDirectory() as out:
        trainer = counting(trainer_cls, labelled)(
            model=model,
            args=SFTConfig(output_dir=out, **args),
            train_dataset=train,
            processing_class=tok,
            callbacks=[Clock()],
            **extra,
        )
        trainer.train()
    (t0, n0), (t1, n1) = marks[1], marks[-1]
    body, head = linear_params(model)
    return {
        "arm": arm,
        "packing": args.get("packing_strategy", "none"),
        "tokens_per_s": (n1 - n0) / (t1 - t0),
        "tokens_per_step": (n1 - n0) / (len(marks) - 2),
        "s_per_step": (t1 - t0) / (len(marks) - 2),
        "timed_steps": len(marks) - 2,
        "labelled_per_s": sum(labelled[2:]) / (t1 - t0),
        "body_linear_params": body,
        "head_params": head,
        "loss_head": "labelled" if extra.get("labelled_head") else "trl",
        **sft.packing_counts(trainer.train_dataset, 256),
    }


def prepare(work: Path) -> None:
    if (work / "00_init" / "checkpoint").is_dir() and (work / "data" / "sft").is_dir():
        return
    cmd = [sys.executable, "-m", "posttrain.cli", "run", "pipeline=nano2_tiny", f"run_dir={work}"]
    cmd += ["pipeline.stages=[sft]", "stage.sft.max_steps=1", "logger=jsonl"]
    subprocess.run(cmd, check=True, cwd=ROOT)


def markdown(out: dict) -> str:
    lines = [
        "# SFT throughput: posttrain vs plain TRL defaults",
        "",
        f"`{out['command']}` on {out['machine']}, {out['threads']} threads, {out['steps']} steps per arm "
        f"(rate from step 2 to the last), batch 8, the nano2_tiny init checkpoint and sft view.",
        "",
        "| arm | packing | LM head | real tokens/s | tokens/step | s/step | MFU |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in out["arms"].values():
        lines.append(
            f"| {a['arm']} | {a['packing']} | {a['loss_head']} | {a['tokens_per_s']:,.0f} | {a['tokens_per_step']:,.0f} | "
            f"{a['s_per_step']:.2f} | {a['mfu']:.2%} |"
        )
    lines += [
        "",
        f"posttrain / TRL defaults: **{out['ratio']:.2f}x**; fp32 matmul peak "
        f"{out['matmul_peak_flops'] / 1e9:.1f} GFLOP/s; posttrain MFU {out['mfu']:.2%}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 steps per arm")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_train_throughput")
    ap.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # internal: one arm, JSON on stdout
    a = ap.parse_args()
    steps = 8 if a.quick else a.steps
    if a.arm:
        print("ARM " + json.dumps(run_arm(a.arm, a.work, steps)))
        return
    prepare(a.work)
    arms = {}
    for arm in ARMS:
        cmd = [sys.executable, __file__, "--arm", arm, "--work", str(a.work), "--steps", str(steps)]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = [x for x in res.stdout.splitlines() if x.startswith("ARM ")]
        if res.returncode or not line:
            sys.exit(f"arm {arm} failed:\n{res.stderr[-3000:]}")
        arms[arm] = json.loads(line[-1][4:])
    peak = matmul_peak()
    for r in arms.values():  # useful FLOPs: the body on every real token, the head where a label is
        r["flops_per_s"] = 6 * (
            r["body_linear_params"] * r["tokens_per_s"] + r["head_params"] * r["labelled_per_s"]
        )
        r["mfu"] = r["flops_per_s"] / peak
    out = {
        "command": "python bench/train_throughput.py" + (" --quick" if a.quick else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
        "steps": steps,
        "arms": arms,
        "posttrain_tokens_per_s": arms["posttrain"]["tokens_per_s"],
        "trl_defaults_tokens_per_s": arms["trl_defaults"]["tokens_per_s"],
        "ratio": arms["posttrain"]["tokens_per_s"] / arms["trl_defaults"]["tokens_per_s"],
        "packing": arms["posttrain"]["packing"],
        "mfu": arms["posttrain"]["mfu"],
        "matmul_peak_flops": peak,
    }
    res_dir = ROOT / "bench" / "results"
    (res_dir / "train_throughput.json").write_text(json.dumps(out, indent=2) + "\n")
    (res_dir / "train_throughput.md").write_text(markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    main()
