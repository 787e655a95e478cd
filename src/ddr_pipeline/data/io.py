"""Read and write the input schema: GeoParquet/Parquet tables and zarr (v3) stores.

All writers are atomic: they write into a temporary path next to the target and rename it into
place, so a crash never leaves a half-written table or store behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from ddr_pipeline.data import schema

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
TARGET_CHUNK_BYTES = 4 * 2**20  # aim for chunks of about 4 MiB (uncompressed)


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success move it onto ``path`` (file or directory).

    Files are swapped in with ``os.replace``. A directory replacing an existing one is swapped
    with one atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``), so ``path`` holds the old or
    the complete new content at every instant, also when the process is killed. Where the
    exchange is unsupported it falls back to two renames (old aside, new in); a kill between them
    leaves the old content in ``.<name>.old-<pid>-<token>``, which
    :func:`clean_stale_temporaries` puts back at the next start. Temporary names carry the
    writer's process id so that leftovers of dead writers can be told from live ones.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    tmp = target.with_name(f".{target.name}.tmp-{token}")
    try:
        yield tmp
        if tmp.is_dir() and target.exists() and not _exchange(tmp, target):
            old = target.with_name(f".{target.name}.old-{token}")
            target.rename(old)
            try:
                tmp.rename(target)
            except BaseException:
                old.rename(target)
                raise
            _remove(old)
        elif not tmp.is_dir() or not target.exists():
            os.replace(tmp, target)
    finally:
        _remove(tmp)  # after an exchange: the old content


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; ``False`` where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return done == 0


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-z_]+$")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0; a foreign owner counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(root: PathLike) -> list[Path]:
    """Remove the temporaries of dead writers under ``root``; put back stores they moved aside.

    Returns the paths removed or restored. Temporaries of live processes are left alone; zarr
    stores are not descended into.
    """
    handled = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.endswith(".zarr")]
        for name in [*dirs, *files]:
            match = _LEFTOVER.match(name)
            if match is None or process_alive(int(match["pid"])):
                continue
            path = Path(folder) / name
            original = Path(folder) / match["name"]
            if match["kind"] == "old" and not original.exists():
                path.rename(original)  # killed between the two renames: the old store returns
                logger.warning("restored %s from %s", original, path)
            else:
                _remove(path)
                logger.warning("removed %s left by a killed process", path)
            handled.append(path)
        dirs[:] = [d for d in dirs if not _LEFTOVER.match(d)]
    return handled


def _remove(path: Path) -> None:
    """Delete a file or directory tree if it exists."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


# --- tables --------------------------------------------------------------------------------------
def read_reaches(path: PathLike) -> gpd.GeoDataFrame:
    """Read the reaches GeoParquet table."""
    return gpd.read_parquet(path)


def write_reaches(reaches: gpd.GeoDataFrame, path: PathLike) -> None:
    """Write the reaches table as GeoParquet (atomic)."""
    with atomic_path(path) as tmp:
        reaches.to_parquet(tmp, index=False)


def read_table(path: PathLike) -> pd.DataFrame:
    """Read a Parquet table; list columns (e.g. ``reach_ids``) come back as lists of ints."""
    table = pq.read_table(path)
    df = table.to_pandas()
    for field in table.schema:
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            df[field.name] = pd.Series(table.column(field.name).to_pylist(), dtype=object)
    return df


def write_table(df: pd.DataFrame, path: PathLike) -> None:
    """Write a Parquet table (atomic); a ``reach_ids`` column is stored as ``list<int64>``."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if schema.REACH_IDS_COL in df.columns:
        lists = pa.array(
            [[int(i) for i in v] for v in df[schema.REACH_IDS_COL]], type=pa.list_(pa.int64())
        )
        idx = table.schema.get_field_index(schema.REACH_IDS_COL)
        table = table.set_column(idx, schema.REACH_IDS_COL, lists)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


# --- zarr stores ---------------------------------------------------------------------------------
class UnreadableChunkError(ValueError):
    """A chunk of a zarr store cannot be read or fails its checksum (names store and chunk)."""


def checksummed_compressors() -> tuple[BloscCodec, Crc32cCodec]:
    """Codecs of every numeric array the project writes: zstd, then a CRC-32C of the chunk.

    The checksum makes flipped or truncated bytes fail the read instead of changing values.
    """
    return BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"), Crc32cCodec()


def first_unreadable_chunk(path: PathLike) -> tuple[str, str, Exception] | None:
    """``(variable, chunk key, error)`` of the first chunk of the local store that fails to read.

    Only called after a read failed: it reads the store again chunk by chunk.
    """
    group = zarr.open_group(str(path), mode="r")
    for name, array in group.arrays():
        for index in np.ndindex(*array.cdata_shape):
            try:
                array.get_block_selection(index)
            except Exception as error:  # any decoder, checksum or I/O error names this chunk
                return name, array.metadata.encode_chunk_key(index), error
    return None


def load_checked(ds: xr.Dataset, path: PathLike) -> xr.Dataset:
    """``ds.load()``; a failed read raises :class:`UnreadableChunkError` naming the chunk."""
    try:
        return ds.load()
    except Exception as error:
        found = first_unreadable_chunk(path) if Path(path).exists() else None
        if found is None:
            raise
        name, key, cause = found
        raise UnreadableChunkError(
            f"{path}: chunk {key} of variable {name!r} cannot be read ({cause}); the store is "
            "damaged: re-create it from its source"
        ) from error


def read_zarr(path: PathLike, lazy: bool = False) -> xr.Dataset:
    """Open a zarr store with xarray; loaded into memory unless ``lazy``."""
    if not Path(path).exists():
        raise FileNotFoundError(f"zarr store not found: {path}")
    ds = xr.open_zarr(path, consolidated=False)
    strings = {
        k: schema.as_str_array(c.to_numpy()) for k, c in ds.coords.items() if c.dtype.kind in "OTU"
    }
    ds = ds.assign_coords(strings)
    return ds if lazy else load_checked(ds, path)


def default_chunks(da: xr.DataArray) -> tuple[int, ...]:
    """Chunk shape of about ``TARGET_CHUNK_BYTES``: whole time series, split along the first dim."""
    shape = da.shape
    if not shape:
        return ()
    per_row = int(np.prod(shape[1:], dtype=np.int64)) * da.dtype.itemsize
    rows = max(1, min(shape[0], TARGET_CHUNK_BYTES // max(per_row, 1)))
    return (rows, *shape[1:])


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, object]]:
    """Zstd/Blosc compression, CRC-32C checksums and default chunks for numeric data variables."""
    enc: dict[str, dict[str, object]] = {}
    for name, da in ds.data_vars.items():
        if np.issubdtype(da.dtype, np.number):
            enc[str(name)] = {
                "chunks": default_chunks(da),
                "compressors": checksummed_compressors(),
            }
    return enc


def write_zarr(ds: xr.Dataset, path: PathLike) -> None:
    """Write ``ds`` as an unconsolidated zarr v3 store (atomic: temp dir, then rename)."""
    clean = ds.copy()
    for var in clean.variables.values():
        var.encoding = {}
    for name, coord in clean.coords.items():
        if coord.dtype.kind in "OUT":
            clean = clean.assign_coords({name: coord.to_numpy().astype(str).astype(object)})
    with atomic_path(path) as tmp:
        clean.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3, encoding=_encoding(clean))
    logger.info("wrote %s", path)


# --- a whole geodataset --------------------------------------------------------------------------
@dataclass(frozen=True)
class GeoDataset:
    """All inputs of one geodataset, in the schema of :mod:`ddr_pipeline.data.schema`."""

    reaches: gpd.GeoDataFrame
    gauges: pd.DataFrame
    attributes: pd.DataFrame
    lateral_inflow: xr.Dataset
    observations: xr.Dataset
    forcings: xr.Dataset
    reference: xr.Dataset | None = None
    lakes: pd.DataFrame | None = None


def load_geodataset(folder: PathLike, lazy: bool = False) -> GeoDataset:
    """Read every file of a schema folder (``reference_outflow.zarr``, ``lakes.parquet`` only when
    present; validate the lakes with :func:`ddr_pipeline.data.lakes.read_lakes`)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"geodataset folder not found: {root}")
    reference_path = root / schema.REFERENCE_STORE
    lakes_path = root / schema.LAKES_FILE
    return GeoDataset(
        reaches=read_reaches(root / schema.REACHES_FILE),
        gauges=read_table(root / schema.GAUGES_FILE),
        attributes=read_table(root / schema.ATTRIBUTES_FILE),
        lateral_inflow=read_zarr(root / schema.LATERAL_INFLOW_STORE, lazy=lazy),
        observations=read_zarr(root / schema.OBSERVATIONS_STORE, lazy=lazy),
        forcings=read_zarr(root / schema.FORCINGS_STORE, lazy=lazy),
        reference=read_zarr(reference_path, lazy=lazy) if reference_path.exists() else None,
        lakes=read_table(lakes_path) if lakes_path.exists() else None,
    )
