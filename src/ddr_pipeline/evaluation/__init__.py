"""Evaluation of routed discharge: metrics, the one per-gauge scorer, baselines, the evaluation
dataset, score tables, parameter fields and plots."""
