"""Experiment drivers: multi-run studies built on the core (pipelines, evals), e.g. the truncation
ablation behind ``posttrain ablate``. Nothing in the core imports from here."""
