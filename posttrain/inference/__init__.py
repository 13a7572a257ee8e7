"""Inference: batched generation with the chat template, and thinking-budget control."""
