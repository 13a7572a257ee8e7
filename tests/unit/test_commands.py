"""The one ``key=value`` grammar of the commands other than ``run`` (``posttrain.config.commands``)."""

from __future__ import annotations

import importlib.util
from dataclasses import fields
from pathlib import Path

import pytest

from posttrain import PosttrainError
from posttrain.config.commands import (
    COMMANDS,
    AblateConfig,
    EvalBudgetConfig,
    SweepConfig,
    parse_command,
    usage,
)
from posttrain.config.schema import EvalStageConfig
from posttrain.evals.sweep import eval_budget_main

PROG = "posttrain eval budget"


def test_positional_and_typed_values():
    cfg = parse_command(
        EvalBudgetConfig,
        ["ck", "out=o", "data=d", "budgets=[0,8,null]", "max_tokens=64"],
        PROG,
        ("checkpoint",),
    )
    assert (cfg.checkpoint, cfg.out, cfg.budgets, cfg.max_tokens) == ("ck", "o", [0, 8, None], 64)
    assert cfg.grace == SweepConfig().grace  # the shared default


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["out=o", "data=d", "max_tokenz=3"], "max_tokenz"),  # unknown key, named
        (["out=o", "data=d", "max_tokens=many"], "max_tokens"),  # wrong type, named
        (["ck", "data=d"], "out: required"),
        (["out=o", "data=d"], "checkpoint: required"),
        (["out=o", "data=d", "a", "b"], "unexpected argument 'b'"),
    ],
)
def test_bad_arguments_name_the_key(args, names):
    with pytest.raises(PosttrainError, match=names):
        parse_command(EvalBudgetConfig, args, PROG, ("checkpoint",))


def test_eval_budget_fails_before_loading_anything(tmp_path):
    with pytest.raises(PosttrainError, match="max_tokenz"):
        eval_budget_main([str(tmp_path / "nowhere"), "out=o", "data=d", "max_tokenz=3"])


@pytest.mark.parametrize("schema", list(COMMANDS.values()))
def test_help_lists_every_field_with_its_help(schema, capsys):
    assert parse_command(schema, ["--help"], "prog") is None
    text = capsys.readouterr().out
    assert text == usage(schema, "prog") + "\n"
    for f in fields(schema):
        assert f"  {f.name}=" in text and f.metadata["help"] in text


def test_every_sweep_shares_one_set_of_defaults():
    sweep = SweepConfig()
    for schema in (EvalBudgetConfig, AblateConfig):
        got = schema(**({"out": "o"} if schema is AblateConfig else {}))
        assert {f.name: getattr(got, f.name) for f in fields(SweepConfig)} == vars(sweep)
    assert EvalStageConfig().sweep_grace == sweep.grace
    spec = importlib.util.spec_from_file_location(
        "bench_budget", Path(__file__).parents[2] / "bench/budget.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.build_parser().parse_args([])
    assert (args.max_tokens, args.grace, args.max_per_category, args.split) == (
        sweep.max_tokens,
        sweep.grace,
        sweep.max_per_category,
        sweep.split,
    )


def test_every_command_schema_is_registered_in_the_configstore():
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from posttrain.config.commands import COMMANDS, InspectConfig, register_commands

    register_commands()
    for name, schema in COMMANDS.items():
        node = ConfigStore.instance().load(f"command/{name}.yaml").node
        assert OmegaConf.get_type(node) is schema
    assert parse_command(InspectConfig, ["d"], "posttrain data inspect", ("dir",)).dir == "d"
    with pytest.raises(PosttrainError, match=r"posttrain data inspect: colour: .*keys: dir"):
        parse_command(InspectConfig, ["d", "colour=red"], "posttrain data inspect", ("dir",))
