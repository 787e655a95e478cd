"""``evaluation`` pipeline: score a trained model and baselines on the test period."""

from ddr_pipeline.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
