"""Atomic variants of the stock kedro-datasets file datasets used for pipeline outputs.

Each class keeps its parent's behaviour (save/load arguments, versioning, validation). A save on
the local filesystem writes through the public API of the stock dataset: an unversioned twin of
the dataset (same save arguments) saves into a hidden temporary sibling of the target
(``.<name>.tmp-<token>``, :func:`ddr_pipeline.data.io.atomic_path`), which is then
``os.replace``-d onto the target. A run that dies mid-save therefore leaves either the previous
file or the complete new one, never a truncated file. The temporary name never matches the
versioned-path glob (``<filepath>/*/<name>``), so it cannot be picked up as a version. Remote
protocols (``s3://`` etc.) use the parent's save unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.io.core import get_protocol_and_path
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset

from ddr_pipeline.data.io import atomic_path

logger = logging.getLogger(__name__)

LOCAL_PROTOCOL = "file"
#: Constructor arguments that belong to the target only (the temporary twin is unversioned).
_TARGET_ONLY = ("filepath", "version", "metadata")


class _AtomicSaveMixin:
    """Save through an unversioned twin of the stock dataset (its public ``save``).

    Must precede the kedro-datasets class in the bases; the stock class is the next base.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._twin_arguments = {k: v for k, v in kwargs.items() if k not in _TARGET_ONLY}
        self._target_protocol = get_protocol_and_path(str(kwargs["filepath"]))[0]

    def _twin(self, filepath: str) -> Any:
        """The stock dataset, unversioned, with this one's save arguments, at ``filepath``."""
        mro = type(self).__mro__
        stock = mro[mro.index(_AtomicSaveMixin) + 1]
        return stock(filepath=filepath, **self._twin_arguments)

    def _atomic_save(self, data: Any, *, atomic: bool = True) -> None:
        """Save ``data`` at the (versioned) save path: via a temporary file on the local disk."""
        target = str(self._get_save_path())
        if not atomic or self._target_protocol != LOCAL_PROTOCOL:
            remote = self._target_protocol != LOCAL_PROTOCOL
            self._twin(f"{self._target_protocol}://{target}" if remote else target).save(data)
            return
        with atomic_path(Path(target)) as tmp:
            self._twin(str(tmp)).save(data)
        logger.debug("atomically saved %s", target)


class AtomicParquetDataset(_AtomicSaveMixin, ParquetDataset):
    """``pandas.ParquetDataset`` whose local saves are atomic (temp file, then rename)."""

    def save(self, data: Any) -> None:
        """Write the DataFrame as Parquet, atomically on the local filesystem."""
        self._atomic_save(data)


class AtomicCSVDataset(_AtomicSaveMixin, CSVDataset):
    """``pandas.CSVDataset`` whose local saves are atomic (temp file, then rename)."""

    def save(self, data: Any) -> None:
        """Write the DataFrame as CSV, atomically on the local filesystem."""
        self._atomic_save(data)


class AtomicJSONDataset(_AtomicSaveMixin, JSONDataset):
    """``json.JSONDataset`` whose local saves are atomic (temp file, then rename)."""

    def save(self, data: Any) -> None:
        """Write ``data`` as JSON, atomically on the local filesystem."""
        self._atomic_save(data)


class AtomicMatplotlibDataset(_AtomicSaveMixin, MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` whose single-figure local saves are atomic.

    A list or dict of figures is written into a folder by the parent (possibly merging with
    existing files when ``overwrite`` is false), so that case keeps the parent's in-place save.
    """

    def save(self, data: Any) -> None:
        """Write a figure image, atomically on the local filesystem for a single figure."""
        self._atomic_save(data, atomic=not isinstance(data, list | dict))
