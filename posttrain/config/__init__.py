"""Structured configs (the single home of every default) and Hydra composition."""

from posttrain.config.schema import STAGE_SCHEMAS, ModelConfig, RootConfig, register_configs

__all__ = ["STAGE_SCHEMAS", "ModelConfig", "RootConfig", "register_configs"]
