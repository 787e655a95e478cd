"""Custom Kedro datasets for ``ddr_pipeline`` (referenced from the catalog by full path)."""

from ddr_pipeline.datasets.checkpoint import CheckpointDataset
from ddr_pipeline.datasets.zarr_dataset import XarrayZarrDataset

__all__ = ["CheckpointDataset", "XarrayZarrDataset"]
