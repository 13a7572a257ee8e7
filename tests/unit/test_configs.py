"""Every YAML under configs/ composes; bad overrides fail naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from posttrain.cli import CONFIG_DIR, compose
from posttrain.pipeline.plan import build_plan

GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir())


def _group_options():
    for group in GROUPS:
        for yml in sorted((CONFIG_DIR / group).glob("*.yaml")):
            yield group, yml.stem


@pytest.mark.parametrize("group,name", list(_group_options()))
def test_every_yaml_composes(group, name, tmp_path):
    if group == "stage":
        cfg = compose([f"+stage@stage.extra={name}"])
        assert cfg.stage.extra.kind == name
    elif group == "deepspeed":
        cfg = compose([f"+deepspeed={name}"])
        assert cfg.deepspeed.zero_optimization.stage in (2, 3)
    else:
        extra = ["model.path=/nonexistent"] if (group, name) == ("model", "hf") else []
        if (group, name) == ("pipeline", "nano2_compress_12b"):  # its one required user input: the text mix
            (tmp_path / "text.jsonl").write_text('{"text": "x"}\n')
            extra = [f"stage.distill.text_path={tmp_path / 'text.jsonl'}"]
        cfg = compose([f"{group}={name}", *extra])
        assert cfg[group] is not None
    if group == "pipeline":
        plan = build_plan(cfg)
        assert [p.name for p in plan] == list(cfg.pipeline.stages)


def test_required_groups_exist():
    assert {"pipeline", "model", "data", "stage", "launcher", "logger", "deepspeed"} <= set(GROUPS)


@pytest.mark.parametrize(
    "override,key",
    [
        ("stage.dpo.betta=0.2", "betta"),
        ("stage.dpo.beta=abc", "stage.dpo.beta"),
        ("model.hidden_size=big", "model.hidden_size"),
        ("launcher.nproc=two", "launcher.nproc"),
    ],
)
def test_bad_override_names_the_key(override, key):
    with pytest.raises(ConfigCompositionException) as e:
        compose([override])
    text = str(e.value) + str(e.value.__cause__ or "")
    assert key in text


def test_cli_prints_composed_config():
    out = subprocess.run(
        [sys.executable, "-m", "posttrain.cli", "run", "--cfg", "job", "pipeline=nano2_tiny"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "pipeline:" in out.stdout and "name: nano2_tiny" in out.stdout


def test_cli_bad_key_fails_without_traceback():
    out = subprocess.run(
        [sys.executable, "-m", "posttrain.cli", "run", "stage.sft.max_stepz=3"],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "max_stepz" in out.stderr and "Traceback" not in out.stderr


def test_unknown_command_fails():
    out = subprocess.run(
        [sys.executable, "-m", "posttrain.cli", "frobnicate"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "unknown command" in out.stderr


def test_config_dir_is_package_data():
    """The configs live inside the package, so a (non-editable) wheel install finds them."""
    import posttrain

    assert Path(CONFIG_DIR).resolve() == Path(posttrain.__file__).resolve().parent / "configs"
    assert (Path(CONFIG_DIR) / "config.yaml").exists()


@pytest.mark.parametrize(
    "override,key",
    [
        ("+model.hiden=3", "model.hiden"),
        ("+stage.dpo.betta=1", "stage.dpo.betta"),
        ("+data.totl=5", "data.totl"),
    ],
)
def test_appended_unknown_key_rejected_before_work(override, key):
    from posttrain import PosttrainError

    cfg = compose([override])
    with pytest.raises(PosttrainError, match=key.replace(".", r"\.")):
        build_plan(cfg)
