"""Metric sinks of microvlm-core: the console, ``metrics.jsonl`` and Weights & Biases."""
