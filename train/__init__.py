"""steca-train: a compact trainer and evaluator for datasets built by steca-data."""
