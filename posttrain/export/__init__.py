"""Export posttrain stages to other training frameworks (NeMo-RL)."""
