"""Atomic variants of the stock kedro-datasets file datasets used for pipeline outputs.

Each class keeps its parent's behaviour (save/load arguments, versioning, validation) but, on the
local filesystem, lets the parent write into a hidden temporary sibling of the target
(``.<name>.tmp-<token>``, via :func:`ddr_pipeline.data.io.atomic_path`) that is then
``os.replace``-d onto the target. A run that dies mid-save therefore leaves either the previous
file or the complete new one, never a truncated file. The temporary name never matches the
versioned-path glob (``<filepath>/*/<name>``), so it cannot be picked up as a version. Remote
protocols (``s3://`` etc.) fall back to the parent's save unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset

from ddr_pipeline.data.io import atomic_path

logger = logging.getLogger(__name__)

LOCAL_PROTOCOL = "file"


class _AtomicSaveMixin:
    """Run the parent's save against a temporary sibling path, then rename it onto the target.

    Must precede the kedro-datasets class in the bases. The parent's ``save`` body obtains its
    destination from ``_get_save_path()``, which this mixin redirects to the temporary path for
    the duration of the write; the parent's ``_invalidate_cache`` runs again after the rename.
    """

    _protocol: str
    _atomic_tmp: PurePosixPath | None = None

    def _get_save_path(self) -> PurePosixPath:
        """The temporary path while an atomic save is in progress, else the parent's save path."""
        if self._atomic_tmp is not None:
            return self._atomic_tmp
        return super()._get_save_path()  # type: ignore[misc, no-any-return]

    def _atomic_save(self, data: Any) -> None:
        """Save ``data`` with the parent's (unwrapped) save: atomically when on local disk."""
        parent_save = _unwrapped_parent_save(type(self))
        if self._protocol != LOCAL_PROTOCOL:
            parent_save(self, data)
            return
        target = Path(get_filepath_str(self._get_save_path(), self._protocol))
        with atomic_path(target) as tmp:
            self._atomic_tmp = PurePosixPath(tmp.as_posix())
            try:
                parent_save(self, data)
            finally:
                self._atomic_tmp = None
        self._invalidate_cache()  # type: ignore[attr-defined]
        logger.debug("atomically saved %s", target)


def _unwrapped_parent_save(cls: type) -> Any:
    """The raw ``save`` of the first kedro-datasets base after the mixin (no Kedro wrappers).

    Calling the wrapped parent save would re-run the versioning wrapper (and resolve a second,
    different save timestamp); the atomic subclass's own ``save`` is already wrapped by Kedro.
    """
    mro = cls.__mro__
    parent = mro[mro.index(_AtomicSaveMixin) + 1]
    save = parent.save
    return getattr(save, "__wrapped__", save)


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
        if isinstance(data, list | dict):
            _unwrapped_parent_save(type(self))(self, data)
            return
        self._atomic_save(data)
