"""Custom Kedro datasets for ``ddr_pipeline`` (referenced from the catalog by full path)."""

from ddr_pipeline.project.datasets.atomic import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicMatplotlibDataset,
    AtomicParquetDataset,
)
from ddr_pipeline.project.datasets.checkpoint import CheckpointDataset
from ddr_pipeline.project.datasets.optional import OptionalParquetDataset
from ddr_pipeline.project.datasets.zarr_dataset import XarrayZarrDataset

__all__ = [
    "AtomicCSVDataset",
    "AtomicJSONDataset",
    "AtomicMatplotlibDataset",
    "AtomicParquetDataset",
    "CheckpointDataset",
    "OptionalParquetDataset",
    "XarrayZarrDataset",
]
