"""Evaluation: metrics, baselines, ablations, reports and the human-eval kit (python -m eval)."""
