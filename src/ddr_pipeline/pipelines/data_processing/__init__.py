"""``data_processing``: validate a geodataset and build the model-ready inputs."""

from ddr_pipeline.pipelines.data_processing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
