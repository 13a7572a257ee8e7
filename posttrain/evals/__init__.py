"""Eval statistics and reporting: confidence intervals (``stats``) and the aggregation of per-item
scores into metrics, paired deltas and markdown (``report``)."""
