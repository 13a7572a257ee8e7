"""``posttrain`` command line.

posttrain run pipeline=<name> run_dir=<dir> [hydra overrides...]   (full Hydra grammar, -m sweeps)
posttrain status <dir> [json=true]
posttrain export nemo_rl pipeline=<name> out=<dir> [hydra overrides...]  (NeMo-RL jobs, nothing submitted)
posttrain data build recipe=<name> out=<dir> [field=value ...]
posttrain data inspect <dir>
posttrain serve <checkpoint> [host=127.0.0.1] [port=8000] [max_concurrency=8] [max_body_bytes=N] ...
                                                       (OpenAI-compatible HTTP server, bounded)
posttrain eval budget <checkpoint> budgets=[0,8,16,none] out=<dir> data=<data dir>
posttrain memory model=<name> [context=131072] [batch=1] [gpu=a10g | budget_gib=N] [json=true]
                                                       (weights + KV cache + Mamba state vs a GPU budget)
posttrain nas out=<dir> [depths=[6,7]] [hidden_sizes=[...]] [budget_gib=N] [-- hydra overrides]
                                                       (Nano 2's two-phase depth / width search)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from posttrain import PosttrainError, console
from posttrain.config.compose import CONFIG_DIR, compose

__all__ = ["CONFIG_DIR", "compose", "main"]


def quiet(libraries: bool = True) -> None:
    """Library warnings off (``posttrain.console``); ``libraries=True`` also imports torch and
    transformers for the settings that have no environment variable."""
    console.quiet()
    if libraries:
        console.quiet_libraries()


# Commands that never train: quiet() leaves the libraries to be imported when (and if) they are
# needed. status, memory and report never import torch, transformers or datasets; data imports
# datasets and the tokenizer only.
LIGHT_COMMANDS = ("status", "memory", "report", "data")


def launch(cfg) -> None:
    """Run the pipeline here, or hand its stages to a launcher (slurm, torchrun)."""
    from hydra.core.hydra_config import HydraConfig

    from posttrain.pipeline.runner import prepare, run_pipeline

    kind = cfg.launcher.kind
    if kind not in ("local", "slurm", "torchrun"):
        raise PosttrainError(f"launcher.kind: unknown launcher {kind!r}; use local, torchrun or slurm")
    prep = prepare(cfg)
    overrides = list(HydraConfig.get().overrides.task)
    if kind == "slurm":
        from posttrain.launch.slurm_pipeline import submit_pipeline

        ids = submit_pipeline(cfg, prep, overrides, workdir=os.getcwd())
        print("submitted: " + (", ".join(f"{s}={j}" for s, j in ids.items()) or "nothing (all stages done)"))
    elif kind == "torchrun":
        from posttrain.launch.torchrun import run_with_torchrun

        run_with_torchrun(cfg, prep, overrides)
    else:
        run_pipeline(cfg, prep)


def cmd_run(argv: list[str]) -> int:
    import hydra

    from posttrain.config import register_configs

    register_configs()

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
    def _main(cfg) -> None:
        from data_recipes.errors import DataError
        from posttrain.pipeline.status import print_status

        quiet(libraries=False)  # the runner imports the libraries when a stage runs (console.py)
        try:
            launch(cfg)
        except (PosttrainError, DataError) as e:
            print(f"error: {e}", file=sys.stderr)
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            if HydraConfig.get().mode == RunMode.MULTIRUN:
                raise  # the launcher records it (submitit returns it to the sweep instead of hanging)
            sys.exit(2)
        if not cfg.get("only_stage"):
            print_status(Path(cfg.run_dir))

    sys.argv = ["posttrain run", *argv]
    _main()
    return 0


def cmd_status(argv: list[str]) -> int:
    from posttrain.config.commands import StatusConfig, parse_command
    from posttrain.pipeline.status import print_status, status_rows

    a = parse_command(StatusConfig, argv, "posttrain status", ("run_dir",))
    if a is None:
        return 0
    if not Path(a.run_dir).is_dir():
        raise PosttrainError(f"run dir {a.run_dir} does not exist")
    if a.json:
        import json

        print(json.dumps(status_rows(Path(a.run_dir)), indent=2, default=str))
    else:
        print_status(Path(a.run_dir))
    return 0


def _kv(args: list[str]) -> dict[str, str]:
    out = {}
    for a in args:
        if "=" not in a:
            raise PosttrainError(f"expected key=value, got {a!r}")
        k, v = a.split("=", 1)
        out[k] = v
    return out


def _data_tokenizer(cfg):
    """The tokenizer ``data build`` renders with when ``data.tokenizer`` is unset: the tiny model's (the
    pipeline passes its initial checkpoint's tokenizer instead, after the Nano 2 template is installed)."""
    if cfg.data.tokenizer is not None:
        return None
    if cfg.model.kind != "tiny":
        raise PosttrainError(
            f"data.tokenizer: model.kind={cfg.model.kind} needs the model's tokenizer; set "
            "data.tokenizer=<checkpoint dir> (e.g. <run_dir>/00_init/checkpoint), or let `posttrain run` build it"
        )
    from posttrain.models import build_tokenizer

    return build_tokenizer()


def cmd_data(argv: list[str]) -> int:
    if not argv or argv[0] not in ("build", "inspect"):
        print(
            "usage: posttrain data build recipe=<name> out=<dir> [field=value ...] | posttrain data inspect <dir>"
        )
        return 2
    if argv[0] == "inspect":
        from data_recipes.inspect import render_inspect
        from posttrain.config.commands import InspectConfig, parse_command

        cfg = parse_command(InspectConfig, argv[1:], "posttrain data inspect", positional=("dir",))
        if cfg is not None:
            print(render_inspect(cfg.dir))
        return 0
    if any(a in ("-h", "--help") for a in argv[1:]):
        from data_recipes.config import RecipeConfig
        from posttrain.config.commands import usage

        recipes = sorted(p.stem for p in (Path(CONFIG_DIR) / "data").glob("*.yaml"))
        print(usage(RecipeConfig, "posttrain data build recipe=<name> out=<dir> [field=value ...]"))
        print(f"\nrecipes: {', '.join(recipes)}")
        return 0
    from omegaconf import OmegaConf

    from data_recipes.build import build_recipe

    kv = _kv(argv[1:])
    out = kv.pop("out", None)
    if not out:
        raise PosttrainError("data build: missing out=<dir>")
    overrides = [f"data={kv.pop('recipe', 'nano2_tiny')}"] + [f"data.{k}={v}" for k, v in kv.items()]
    cfg = compose(overrides)
    manifest = build_recipe(OmegaConf.to_object(cfg.data), out, tokenizer=_data_tokenizer(cfg))
    c, r = manifest["counts"], manifest["rejected"]
    print(f"built {c['total']} samples into {out} (fingerprint {manifest['fingerprint'][:12]})")
    for key, s in manifest["mixture"].get("sampled", {}).items():
        print(
            f"  {key} {s['path']}: took {s['taken']} of {s['read']} valid rows (take={s['take']}, "
            f"{s['rejected']} rejected)"
        )
    if r["count"]:
        print(f"  {r['count']} rejected records in {Path(out) / r['path']}")
    return 0


def cmd_export(argv: list[str]) -> int:
    """``posttrain export nemo_rl pipeline=<name> out=<dir> [launcher.nemo_rl_dir=DIR] [hydra overrides...]``."""
    if not argv or argv[0] != "nemo_rl" or any(a in ("-h", "--help") for a in argv[1:]):
        from posttrain.export import pipeline

        print(
            "usage: posttrain export nemo_rl pipeline=<name> out=<dir> [launcher.nemo_rl_dir=DIR] [overrides...]\n"
        )
        print(pipeline.__doc__.strip())
        return 0 if argv and argv[0] == "nemo_rl" else 2
    from posttrain.export.pipeline import export_pipeline

    rest = [a for a in argv[1:] if not a.startswith("out=")]
    out = _kv([a for a in argv[1:] if a.startswith("out=")]).get("out")
    if not out:
        raise PosttrainError("export nemo_rl: missing out=<dir> (the run dir the jobs are prepared in)")
    report = export_pipeline(compose([*rest, f"run_dir={out}"]))
    for j in report["jobs"]:
        d = j["data"]
        print(
            f"{j['stage']}: NeMo-RL {j['algorithm']} job in {j['job_dir']} ({d}); {len(j['dropped'])} fields dropped"
        )
    for name, why in report["not_exported"].items():
        print(f"{name}: not exported ({why})")
    print(f"submit with: bash {Path(report['run_dir']) / 'nemo_rl' / 'submit.sh'}")
    return 0


def cmd_serve(argv: list[str]) -> int:
    from posttrain.inference.server import serve_main

    return serve_main(argv)


def cmd_eval(argv: list[str]) -> int:
    if not argv or argv[0] != "budget":
        raise PosttrainError("usage: posttrain eval budget <checkpoint> budgets=[...] out=<dir> ...")
    from posttrain.evals.sweep import eval_budget_main

    return eval_budget_main(argv[1:])


def cmd_nas(argv: list[str]) -> int:
    from posttrain.experiments.nas import nas_main

    return nas_main(argv)


def cmd_ablate(argv: list[str]) -> int:
    from posttrain.experiments.ablation import ablation_main

    return ablation_main(argv)


def cmd_report(argv: list[str]) -> int:
    from posttrain.tracking.report import report_main

    return report_main(argv)


def cmd_memory(argv: list[str]) -> int:
    from posttrain.compress.memory_cli import memory_main

    return memory_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "run": cmd_run,
        "status": cmd_status,
        "data": cmd_data,
        "serve": cmd_serve,
        "eval": cmd_eval,
        "report": cmd_report,
        "ablate": cmd_ablate,
        "nas": cmd_nas,
        "memory": cmd_memory,
        "export": cmd_export,
    }
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\ncommands: " + ", ".join(commands))
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in commands:
        print(f"error: unknown command {cmd!r}; try `posttrain --help`", file=sys.stderr)
        return 2
    if cmd != "run":
        quiet(libraries=cmd not in LIGHT_COMMANDS)
    from hydra.errors import HydraException

    from data_recipes.errors import DataError

    try:
        return commands[cmd](rest)
    except (PosttrainError, DataError) as e:  # one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except HydraException as e:  # a bad override in `data build` and friends: name the key
        cause = str(e.__cause__ or "").strip().splitlines()[:1]
        print("error: " + " ".join([str(e).strip().splitlines()[0], *cause]), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
