"""Metric tracking: a local metrics.jsonl per stage always; W&B optionally."""
