"""``training`` pipeline: model-ready inputs -> trained KAN + LSTM routing model."""

from ddr_pipeline.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
