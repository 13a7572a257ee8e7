"""Where the Hydra configs live and how a command composes them (everything but ``run``, which uses
``hydra.main`` on the same directory).

The configs ship inside the package (package data), so a wheel install finds them. Add your own with
``posttrain run --config-dir DIR ...`` (Hydra puts DIR first on the search path, so your
``pipeline/<name>.yaml`` can extend ours through ``defaults``), or replace ours with POSTTRAIN_CONFIG_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_DIR = Path(os.environ.get("POSTTRAIN_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs"))


def compose(overrides: list[str]):
    """Compose the root config with Hydra's API."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from posttrain.config.schema import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)
