"""``routing`` pipeline: route a whole domain (or target reaches) with trained weights."""

from ddr_pipeline.pipelines.routing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
