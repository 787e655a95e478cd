"""Readers for external stores (local zarr, Icechunk, ``s3://``) and the DDR gauge CSV.

The DDR ecosystem publishes lateral inflow ``Qr(divide_id, time)``, USGS observations
``streamflow(gage_id, time)``, attributes and forcings as zarr / Icechunk stores (public ones on
``s3://mhpi-spatial/...``, read anonymously). This module opens such stores, checks variable dims
and units, maps divide ids (``cat-N`` -> ``N``), selects a domain by id and a period **by date**
(stores may start on any day) and writes the schema stores ``lateral_inflow.zarr``,
``observations.zarr`` and ``forcings.zarr`` of a domain.

Missing divides in a lateral-inflow store are reported (count and ids) and, by default, filled with
a constant 0.001 m3/s like DDR (``MissingRule``); missing gauges become all-NaN series (NaN =
missing observation); missing forcing divides are an error unless a fill rule is configured.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline.data import io, schema
from ddr_pipeline.data.units import FT3_TO_M3, MM_DAY_KM2_TO_M3S  # noqa: F401 (FT3_TO_M3: re-exported)
from ddr_pipeline.data.units import UNIT_SYNONYMS as _UNITS
from ddr_pipeline.data.units import clean_units as _clean_units
from ddr_pipeline.ingest.errors import StoreError
from ddr_pipeline.ingest.icechunk_format import ICECHUNK_MAGIC, open_icechunk_v2

logger = logging.getLogger(__name__)

StoreKind = Literal["auto", "zarr", "icechunk", "netcdf"]
DEFAULT_REGION = "us-east-2"
DDR_FILL_M3S = 0.001
#: Canonical units of the forcings (the schema's unit table).
FORCING_UNITS = {name: schema.UNITS[name] for name in ("P", "PET", "Temp")}


# ----------------------------------------------------------------------------- opening


def _is_s3(location: str | Path) -> bool:
    return str(location).startswith("s3://")


def _icechunk_storage(location: str | Path, region: str):
    import icechunk

    if _is_s3(location):
        bucket, _, prefix = str(location)[len("s3://") :].partition("/")
        return icechunk.s3_storage(
            bucket=bucket, prefix=prefix.rstrip("/"), region=region, anonymous=True
        )
    return icechunk.local_filesystem_storage(str(location))


_NETCDF_MAGICS = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")
_EXPECTED = (
    "expected an Icechunk repository (format 1: refs/ and snapshots/ folders; format 2: a "
    "`repo` file), a zarr store (zarr v3: zarr.json; zarr v2: .zgroup/.zarray/.zmetadata) or a "
    "netCDF file (classic or netCDF-4/HDF5)"
)


@dataclass(frozen=True)
class IcechunkHeader:
    """What the header of an Icechunk format-2 ``repo`` file says."""

    spec_version: int  # Icechunk on-disk format (2 for icechunk 2.x)
    writer: str  # implementation that wrote it, e.g. ``ic-2.0.3``


def read_icechunk_header(path: str | Path) -> IcechunkHeader:
    """Parse the fixed header of an Icechunk metadata file (magic, writer, spec version).

    Raises:
        StoreError: the file does not start with the Icechunk magic bytes.
    """
    head = Path(path).read_bytes()[:40]
    if not head.startswith(ICECHUNK_MAGIC):
        raise StoreError(f"{path}: not an Icechunk file (no ICE🧊CHUNK magic bytes); {_EXPECTED}")
    start = len(ICECHUNK_MAGIC)
    writer = head[start : start + 24].decode("ascii", errors="replace").strip()
    return IcechunkHeader(spec_version=head[start + 24], writer=writer)


def _local_kind(root: Path) -> StoreKind:
    """Kind of a local store, by what it is (never by its name alone)."""
    if root.is_file():
        with root.open("rb") as handle:
            head = handle.read(8)
        if head.startswith(_NETCDF_MAGICS):
            return "netcdf"
        raise StoreError(f"{root}: a file that is not netCDF (starts with {head!r}); {_EXPECTED}")
    if (root / "repo").is_file():
        read_icechunk_header(root / "repo")  # a `repo` file without the magic is an error
        return "icechunk"
    if (root / "refs").is_dir() and (root / "snapshots").is_dir():
        return "icechunk"
    if any((root / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray", ".zmetadata")):
        return "zarr"
    entries = sorted(p.name for p in root.iterdir())[:10]
    raise StoreError(f"{root}: unrecognised store (holds {entries or 'nothing'}); {_EXPECTED}")


def _s3_kind(location: str) -> StoreKind:
    """Kind of an ``s3://`` store from the objects at its prefix (read anonymously)."""
    if _s3_has(location, "repo") or _s3_has(location, "refs"):
        return "icechunk"
    if any(_s3_has(location, name) for name in ("zarr.json", ".zgroup", ".zmetadata")):
        return "zarr"
    raise StoreError(f"{location}: unrecognised store; {_EXPECTED}")


def detect_kind(location: str | Path) -> StoreKind:
    """``icechunk``, ``zarr`` or ``netcdf``: what the store at ``location`` is.

    Icechunk format 1 is recognised by its ``refs/`` and ``snapshots/`` folders, format 2 by its
    ``repo`` file (checked for Icechunk's magic bytes); zarr v3 by ``zarr.json``, zarr v2 by
    ``.zgroup`` / ``.zarray`` / ``.zmetadata``; netCDF by the file's magic bytes.

    Raises:
        FileNotFoundError: nothing at a local ``location``.
        StoreError: anything else, naming the path and what was expected.
    """
    if _is_s3(location):
        return _s3_kind(str(location))
    root = Path(location)
    if not root.exists():
        raise FileNotFoundError(f"store not found: {location}")
    return _local_kind(root)


def icechunk_format(location: str | Path) -> IcechunkHeader | None:
    """The header of a local format-2 repository, or None (format 1, or a remote repository)."""
    repo = Path(location) / "repo"
    return None if _is_s3(location) or not repo.is_file() else read_icechunk_header(repo)


NEEDS_ICECHUNK2 = "icechunk>=2 (Python>=3.12)"


def _icechunk_major() -> int | None:
    """Major version of the installed icechunk (None when it is not installed)."""
    try:
        import icechunk
    except ImportError:
        return None
    return int(str(icechunk.__version__).split(".", maxsplit=1)[0])


def _open_icechunk(location: str | Path, region: str, branch: str) -> xr.Dataset:
    """An Icechunk repository's ``branch``: through icechunk where it reads the repository's
    format, else (a local format-2 repository, icechunk < 2) through the built-in reader.

    Raises:
        StoreError: icechunk missing, or a remote format-2 repository with icechunk < 2 (says
            what to install).
    """
    header = icechunk_format(location)
    major = _icechunk_major()
    if header is not None and header.spec_version >= 2 and (major or 0) < 2:
        logger.info(
            "%s: Icechunk format-%d repository (written by %s) read with the built-in reader "
            "(installed icechunk: %s)",
            location,
            header.spec_version,
            header.writer,
            "none" if major is None else major,
        )
        return open_icechunk_v2(location, branch)
    if major is None:
        raise StoreError(
            f"{location}: an Icechunk repository, but icechunk is not installed "
            "(pip install -e '.[cloud]')"
        )
    if major < 2 and _is_s3(location) and _s3_has(str(location), "repo"):
        raise StoreError(
            f"{location}: an Icechunk format-2 repository on object storage; the installed "
            f"icechunk reads format 1 only. Install {NEEDS_ICECHUNK2}, or copy the repository "
            "to a local folder (read by the built-in reader; docs/coming_from_ddr.md)"
        )
    import icechunk

    repo = icechunk.Repository.open(_icechunk_storage(location, region))
    session = repo.readonly_session(branch=branch)
    return xr.open_zarr(session.store, consolidated=False, chunks=None)


def _s3_has(location: str, name: str) -> bool:
    import fsspec

    return bool(fsspec.filesystem("s3", anon=True).exists(f"{location.rstrip('/')}/{name}"))


def open_store(
    location: str | Path,
    kind: StoreKind = "auto",
    *,
    region: str = DEFAULT_REGION,
    branch: str = "main",
) -> xr.Dataset:
    """Open a store lazily as an xarray Dataset (nothing is loaded until selected).

    Args:
        location: local path or ``s3://bucket/prefix`` (read anonymously).
        kind: ``zarr``, ``icechunk``, ``netcdf`` or ``auto`` (:func:`detect_kind`: what the
            store is, never its name alone).
        region: AWS region of an ``s3://`` Icechunk repository.
        branch: Icechunk branch.

    Icechunk format-2 repositories (DDR's current stores) are read by icechunk >= 2 where it is
    installed (Python >= 3.12), else, when local, by :mod:`~ddr_pipeline.ingest.icechunk_format`.
    """
    kind = detect_kind(location) if kind == "auto" else kind
    logger.info("opening %s store %s", kind, location)
    if kind == "netcdf":
        return xr.open_dataset(location, chunks=None)
    if kind == "icechunk":
        return _open_icechunk(location, region, branch)
    options = {"anon": True} if _is_s3(location) else None
    with warnings.catch_warnings():  # consolidated metadata is used when present, silently
        warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated")
        return xr.open_zarr(str(location), consolidated=None, chunks=None, storage_options=options)


# ----------------------------------------------------------------------------- ids and checks


def _as_text(values: np.ndarray) -> pd.Series:
    """Any 1-D id array (numpy str/StringDType/object/int) as a pandas string Series."""
    return pd.Series(np.asarray(values).astype(object), dtype="string")


def normalize_divide_ids(values: Sequence[object] | np.ndarray) -> np.ndarray:
    """Divide ids as int64: ``cat-N`` (or any ``<prefix>-N``) -> N; integers pass through.

    Raises:
        StoreError: naming ids that are neither integers nor ``<prefix>-<digits>``.
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise StoreError(
                f"divide ids are not integers: {schema.format_values(arr[arr != np.round(arr)])}"
            )
        return arr.astype(np.int64)
    text = _as_text(arr)
    number = text.str.extract(r"^(?:[A-Za-z]+-)?(\d+)$")[0]
    bad = number.isna()
    if bad.any():
        raise StoreError(
            f"divide ids not of the form cat-<number> or <number>: "
            f"{schema.format_values(text[bad].tolist())}"
        )
    return number.astype("int64").to_numpy()


def _variable(ds: xr.Dataset, name: str, dims: tuple[str, ...], store: str) -> xr.DataArray:
    if name not in ds.data_vars:
        raise StoreError(
            f"{store}: no variable {name!r}; variables: {', '.join(map(str, ds.data_vars))}"
        )
    da = ds[name]
    if set(da.dims) != set(dims):
        raise StoreError(f"{store}: variable {name!r} has dims {da.dims}, expected {dims}")
    return da.transpose(*dims)


def unit_conversion(da: xr.DataArray, canonical: str, store: str) -> tuple[float, float]:
    """(scale, offset) converting ``da`` to ``canonical`` units, from its ``units`` attribute.

    A variable without ``units`` is taken to be in canonical units (logged).

    Raises:
        StoreError: units that are not a known synonym of ``canonical``.
    """
    units = da.attrs.get("units")
    if units is None:
        logger.info(
            "%s: variable %r has no units attribute; assuming %s", store, da.name, canonical
        )
        return 1.0, 0.0
    table = {_clean_units(k): v for k, v in _UNITS[canonical].items()}
    key = _clean_units(str(units))
    if key not in table:
        raise StoreError(
            f"{store}: variable {da.name!r} has units {units!r}; expected {canonical} "
            f"(accepted: {', '.join(sorted(_UNITS[canonical]))})"
        )
    scale, offset = table[key]
    if (scale, offset) != (1.0, 0.0):
        logger.info("%s: converting %r from %s to %s", store, da.name, units, canonical)
    return scale, offset


def _daily_times(da: xr.DataArray, store: str) -> np.ndarray:
    if schema.TIME_DIM not in da.coords:
        raise StoreError(f"{store}: variable {da.name!r} has no {schema.TIME_DIM!r} coordinate")
    times = da[schema.TIME_DIM].to_numpy()
    if not np.issubdtype(times.dtype, np.datetime64):
        raise StoreError(f"{store}: time coordinate is {times.dtype}, expected datetime64")
    days = times.astype("datetime64[D]")
    off = days != times
    if off.any():
        raise StoreError(f"{store}: {da.name!r} is not daily at 00:00 (e.g. {times[off][:3]})")
    return days


def _select_period(da: xr.DataArray, period: tuple[str, str] | None, store: str) -> xr.DataArray:
    """Select ``[start, end]`` by date; error naming the dates when the store does not cover it."""
    days = _daily_times(da, store)
    if period is None:
        return da
    start, end = (np.datetime64(p, "D") for p in period)
    if days.size == 0 or start < days[0] or end > days[-1]:
        first, last = (days[0], days[-1]) if days.size else ("-", "-")
        raise StoreError(
            f"{store}: period {start} .. {end} is outside the store ({first} .. {last})"
        )
    keep = np.flatnonzero((days >= start) & (days <= end))
    if keep.size != int((end - start).astype(np.int64)) + 1:
        gaps = np.setdiff1d(np.arange(start, end + 1), days[keep])
        raise StoreError(f"{store}: missing days {schema.format_values(gaps.astype(str))}")
    return da.isel({schema.TIME_DIM: keep})


UNMAPPED = -1  # reach id of a store divide that maps to no reach of the domain


def _reach_ids(store_ids: np.ndarray, divide_to_reach: pd.Series | None) -> np.ndarray:
    """Reach id of every store entry: ``divide_to_reach`` applied (``UNMAPPED`` if absent)."""
    if divide_to_reach is None:
        return store_ids
    mapped = pd.Series(store_ids).map(divide_to_reach).fillna(UNMAPPED)
    return mapped.astype("int64").to_numpy()


def _warn_absent(store: str, wanted: np.ndarray, found: np.ndarray, what: str) -> None:
    """Report the ``wanted`` ids not ``found`` in ``store`` (they are kept as missing)."""
    if (~found).any():
        missing = wanted[~found].tolist()
        logger.warning("%s: %d %s: %s", store, len(missing), what, schema.format_values(missing))


def _positions(store_ids: np.ndarray, wanted: np.ndarray, dim: str, store: str) -> np.ndarray:
    """Position in ``store_ids`` of each ``wanted`` id (-1 if absent); ``UNMAPPED`` is ignored.

    Raises ``StoreError`` naming the ids that occur more than once.
    """
    index = pd.Index(store_ids)
    usable = ~index.isin([UNMAPPED]) if index.dtype.kind in "iu" else np.ones(index.size, bool)
    candidates = index[usable]
    if not candidates.is_unique:
        raise StoreError(
            f"{store}: duplicated {dim} values "
            f"{schema.format_values(candidates[candidates.duplicated()].unique().tolist())}"
        )
    position = candidates.get_indexer(wanted)
    return np.where(position >= 0, np.flatnonzero(usable)[position], -1)


def _take(
    da: xr.DataArray, dim: str, store_ids: np.ndarray, wanted: np.ndarray, store: str
) -> tuple[np.ndarray, np.ndarray]:
    """Load ``wanted`` rows along ``dim`` (sorted reads); return (values, found-mask)."""
    position = _positions(store_ids, wanted, dim, store)
    found = position >= 0
    order = np.sort(np.unique(position[found]))
    block = (
        np.asarray(da.isel({dim: order}).to_numpy())
        if order.size
        else np.empty((0, da.sizes[schema.TIME_DIM]), dtype=da.dtype)
    )
    out = np.full((wanted.size, da.sizes[schema.TIME_DIM]), np.nan, dtype=np.float64)
    out[found] = block[np.searchsorted(order, position[found])]
    return out, found


# ----------------------------------------------------------------------------- missing rules


@dataclass(frozen=True)
class MissingRule:
    """What to do with ids of the domain that a store lacks.

    ``action="fill"`` fills them with ``value`` (for lateral inflow: 0.001 m3/s like DDR);
    ``action="error"`` raises naming the ids.
    """

    action: Literal["fill", "error"] = "fill"
    value: float = DDR_FILL_M3S


def _report_missing(missing: np.ndarray, what: str, store: str, rule: MissingRule) -> None:
    if missing.size == 0:
        return
    message = (
        f"{store}: {missing.size} {what} absent from the store: "
        f"{schema.format_values(missing.tolist())}"
    )
    if rule.action == "error":
        raise StoreError(message)
    logger.warning("%s; filled with %s", message, rule.value)


# ----------------------------------------------------------------------------- readers


def read_lateral_inflow(
    ds: xr.Dataset,
    reach_ids: Sequence[int] | np.ndarray,
    *,
    period: tuple[str, str] | None = None,
    variable: str = "Qr",
    id_dim: str = schema.DIVIDE_DIM,
    missing: MissingRule = MissingRule(),
    divide_to_reach: pd.Series | None = None,
    area_km2: pd.Series | None = None,
    store: str = "lateral inflow store",
) -> xr.Dataset:
    """Schema ``Qr(divide_id, time)`` (float32, m3/s) for ``reach_ids`` from a store.

    Args:
        ds: opened store (``open_store``); ``variable`` with dims ``(id_dim, time)``; units m3/s
            (synonyms), ft3/s (converted) or a daily depth (mm/day, in/day: converted with
            ``area_km2``).
        reach_ids: the domain's reach ids; output rows follow this order.
        period: optional inclusive ``(start, end)`` dates.
        missing: rule for reach ids the store lacks (reported with ids and count).
        divide_to_reach: optional map from divide number (``cat-N`` -> N) to reach id; default
            identity.
        area_km2: unit-catchment area (km2) by reach id; needed when ``variable`` is a depth.
    """
    da = _select_period(_variable(ds, variable, (id_dim, schema.TIME_DIM), store), period, store)
    wanted = np.asarray(reach_ids, dtype=np.int64)
    depth = _depth_scale(da)
    if depth is None:
        scale, offset = unit_conversion(da, "m3 s-1", store)
    else:
        areas = _unit_areas(area_km2, wanted, da, store)
        scale, offset = (depth * MM_DAY_KM2_TO_M3S * areas)[:, None], 0.0
    store_ids = _reach_ids(normalize_divide_ids(da[id_dim].to_numpy()), divide_to_reach)
    values, found = _take(da, id_dim, store_ids, wanted, store)
    _report_missing(wanted[~found], "divides", store, missing)
    values = values * scale + offset
    values[~found] = missing.value
    return _dataset(
        schema.LATERAL_INFLOW_VAR, schema.DIVIDE_DIM, wanted, values, da, units=schema.UNITS[schema.STREAMFLOW_VAR]
    )


def _depth_scale(da: xr.DataArray) -> float | None:
    """mm/day per unit of ``da`` when its ``units`` are a daily depth (mm/day, in/day), else None."""
    units = da.attrs.get("units")
    if units is None:
        return None
    table = {_clean_units(k): v for k, v in _UNITS["mm day-1"].items()}
    found = table.get(_clean_units(str(units)))
    return None if found is None else found[0]


def _unit_areas(
    area_km2: pd.Series | None, reach_ids: np.ndarray, da: xr.DataArray, store: str
) -> np.ndarray:
    """Unit-catchment areas (km2) of ``reach_ids`` for a depth -> discharge conversion.

    Raises:
        StoreError: no areas given, or reaches without a positive finite area (ids named).
    """
    units = da.attrs.get("units")
    if area_km2 is None:
        raise StoreError(
            f"{store}: variable {da.name!r} is a depth ({units!r}); converting it to m3 s-1 needs "
            "the unit-catchment area of every reach (e.g. --unit-area <attribute variable, km2>)"
        )
    areas = pd.Series(area_km2, dtype="float64").reindex(reach_ids).to_numpy()
    bad = ~(np.isfinite(areas) & (areas > 0))
    if bad.any():
        raise StoreError(
            f"{store}: no positive unit-catchment area to convert {da.name!r} ({units!r}) for "
            f"reach id {schema.format_values(reach_ids[bad].tolist())}"
        )
    logger.info(
        "%s: converting %r from %s to m3 s-1 with unit-catchment areas", store, da.name, units
    )
    return areas


def read_observations(
    ds: xr.Dataset,
    gage_ids: Sequence[str],
    *,
    period: tuple[str, str] | None = None,
    variable: str = "streamflow",
    id_dim: str = schema.GAGE_DIM,
    store: str = "observation store",
) -> xr.Dataset:
    """Schema ``streamflow(gage_id, time)`` (float32, m3/s, NaN = missing) for ``gage_ids``.

    Gauges absent from the store are reported and kept as all-NaN series.
    """
    da = _select_period(_variable(ds, variable, (id_dim, schema.TIME_DIM), store), period, store)
    scale, offset = unit_conversion(da, "m3 s-1", store)
    store_ids = schema.normalize_staid(_as_text(da[id_dim].to_numpy())).to_numpy(str)
    wanted = schema.normalize_staid(pd.Series([str(g) for g in gage_ids])).to_numpy(str)
    values, found = _take(da, id_dim, store_ids, wanted, store)
    _warn_absent(store, wanted, found, "gauges absent (kept as missing observations)")
    values = values * scale + offset
    return _dataset(
        schema.STREAMFLOW_VAR, schema.GAGE_DIM, wanted.astype(object), values, da, units=schema.UNITS[schema.STREAMFLOW_VAR]
    )


def read_forcings(
    ds: xr.Dataset,
    reach_ids: Sequence[int] | np.ndarray,
    *,
    variables: dict[str, str] | None = None,
    period: tuple[str, str] | None = None,
    id_dim: str = schema.DIVIDE_DIM,
    missing: MissingRule = MissingRule("error"),
    divide_to_reach: pd.Series | None = None,
    store: str = "forcing store",
) -> xr.Dataset:
    """Schema forcings ``P``, ``PET`` (mm/day), ``Temp`` (degC) for ``reach_ids``.

    Args:
        variables: schema name -> store variable name (default identity for P, PET, Temp).
        missing: rule for absent divides (default error; ``fill`` uses ``missing.value``).

    NaN inside a present divide is filled with that divide's temporal mean, then 0 (DDR's rule);
    the count is logged.
    """
    variables = variables or {name: name for name in FORCING_UNITS}
    wanted = np.asarray(reach_ids, dtype=np.int64)
    arrays = []
    for name, source in variables.items():
        if name not in FORCING_UNITS:
            raise StoreError(
                f"{store}: unknown forcing {name!r}; known: {', '.join(FORCING_UNITS)}"
            )
        da = _select_period(_variable(ds, source, (id_dim, schema.TIME_DIM), store), period, store)
        scale, offset = unit_conversion(da, FORCING_UNITS[name], store)
        store_ids = _reach_ids(normalize_divide_ids(da[id_dim].to_numpy()), divide_to_reach)
        values, found = _take(da, id_dim, store_ids, wanted, store)
        _report_missing(wanted[~found], f"divides ({source})", store, missing)
        values = _fill_nan_by_row_mean(values * scale + offset, name, store)
        values[~found] = missing.value
        arrays.append(
            _dataset(name, schema.DIVIDE_DIM, wanted, values, da, units=FORCING_UNITS[name])
        )
    return xr.merge(arrays, compat="override", join="exact")


def _fill_nan_by_row_mean(values: np.ndarray, name: str, store: str) -> np.ndarray:
    nan = np.isnan(values)
    if nan.any():
        rows_any = nan.any(axis=1)
        logger.warning(
            "%s: %d NaN values of %s in %d divides filled with the divide mean (else 0)",
            store,
            int(nan.sum()),
            name,
            int(rows_any.sum()),
        )
        with np.errstate(invalid="ignore"):
            counts = (~nan).sum(axis=1)
            means = np.where(counts > 0, np.nansum(values, axis=1) / np.maximum(counts, 1), 0.0)
        values = np.where(nan, means[:, None], values)
    return values


def read_attributes(
    ds: xr.Dataset,
    reach_ids: Sequence[int] | np.ndarray,
    names: Sequence[str] | None = None,
    *,
    id_dim: str = schema.DIVIDE_DIM,
    divide_to_reach: pd.Series | None = None,
    store: str = "attribute store",
) -> pd.DataFrame:
    """Schema attributes (``id`` + one float64 column per attribute) for ``reach_ids``.

    Every variable must be 1-D along ``id_dim`` (``divide_id`` for Lynker, ``COMID`` for MERIT).
    Reaches absent from the store get NaN (reported).
    """
    names = (
        list(names)
        if names is not None
        else [str(v) for v in ds.data_vars if ds[v].dims == (id_dim,)]
    )
    wrong = {n: ds[n].dims for n in names if n in ds.data_vars and ds[n].dims != (id_dim,)}
    absent = [n for n in names if n not in ds.data_vars]
    if absent:
        raise StoreError(
            f"{store}: no attribute(s) {', '.join(absent)}; variables: "
            f"{', '.join(map(str, ds.data_vars))}"
        )
    if wrong:
        raise StoreError(f"{store}: attribute(s) with dims other than ({id_dim!r},): {wrong}")
    if id_dim not in ds.coords:
        raise StoreError(
            f"{store}: no coordinate {id_dim!r}; coordinates: {', '.join(map(str, ds.coords))}"
        )
    store_ids = _reach_ids(normalize_divide_ids(ds[id_dim].to_numpy()), divide_to_reach)
    wanted = np.asarray(reach_ids, dtype=np.int64)
    position = _positions(store_ids, wanted, id_dim, store)
    found = position >= 0
    _warn_absent(store, wanted, found, "reaches absent (NaN attributes)")
    order = np.unique(position[found])
    out = pd.DataFrame({"id": wanted})
    for name in names:
        column = np.full(wanted.size, np.nan)
        if order.size:
            values = np.asarray(ds[name].isel({id_dim: order}).to_numpy(), dtype=np.float64)
            column[found] = values[np.searchsorted(order, position[found])]
        out[name] = column
    return out


def _dataset(
    name: str, dim: str, ids: np.ndarray, values: np.ndarray, source: xr.DataArray, *, units: str
) -> xr.Dataset:
    times = source[schema.TIME_DIM].to_numpy().astype("datetime64[D]").astype("datetime64[ns]")
    da = xr.DataArray(
        values.astype(np.float32),
        dims=(dim, schema.TIME_DIM),
        coords={dim: ids, schema.TIME_DIM: times},
        attrs={"units": units},
    )
    return da.to_dataset(name=name)


# ----------------------------------------------------------------------------- gauge CSV


GAGE_INFO_REQUIRED = ("STAID", "DRAIN_SQKM", "LAT_GAGE", "LNG_GAGE")


def read_gage_info(source: str | Path | pd.DataFrame, require_comid: bool = False) -> pd.DataFrame:
    """DDR gauge CSV: ``STAID`` (str, zero-filled to 8), ``DRAIN_SQKM``, ``LAT_GAGE``,
    ``LNG_GAGE``, ``STANAME`` (default STAID), optional ``COMID`` (int64), ``DA_VALID`` (bool),
    ``FLOW_SCALE`` and the other optional DDR columns.

    Raises:
        StoreError: missing required columns (named), duplicated STAIDs.
    """
    table = (
        source.copy()
        if isinstance(source, pd.DataFrame)
        else pd.read_csv(source, dtype={"STAID": "string"})
    )
    required = [*GAGE_INFO_REQUIRED, *(["COMID"] if require_comid else [])]
    absent = [c for c in required if c not in table]
    if absent:
        raise StoreError(
            f"gauge table {source if not isinstance(source, pd.DataFrame) else ''}: "
            f"missing column(s) {', '.join(absent)}; columns: {', '.join(table.columns)}"
        )
    table["STAID"] = schema.normalize_staid(table["STAID"].astype("string"))
    dup = table["STAID"].duplicated()
    if dup.any():
        raise StoreError(
            f"gauge table: duplicated STAID {schema.format_values(table['STAID'][dup].tolist())}"
        )
    if "STANAME" not in table:
        table["STANAME"] = table["STAID"]
    for column in (
        "DRAIN_SQKM",
        "LAT_GAGE",
        "LNG_GAGE",
        "FLOW_SCALE",
        "COMID_DRAIN_SQKM",
        "COMID_UNITAREA_SQKM",
        "ABS_DIFF",
    ):
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    if "COMID" in table:
        table["COMID"] = pd.to_numeric(table["COMID"], errors="raise").astype("int64")
    if "DA_VALID" in table:
        table["DA_VALID"] = table["DA_VALID"].astype("string").str.lower().isin(["true", "1"])
    return table.reset_index(drop=True)


# ----------------------------------------------------------------------------- writer


@dataclass(frozen=True)
class StoreSource:
    """Where and how to read one external store."""

    location: str
    kind: StoreKind = "auto"
    variable: str | None = None
    id_dim: str | None = None
    region: str = DEFAULT_REGION

    def open(self) -> xr.Dataset:
        """Open the store lazily."""
        return open_store(self.location, self.kind, region=self.region)


def write_domain_stores(
    folder: str | Path,
    reach_ids: Sequence[int] | np.ndarray,
    gage_ids: Sequence[str],
    *,
    lateral_inflow: StoreSource | None = None,
    observations: StoreSource | None = None,
    forcings: StoreSource | None = None,
    forcing_variables: dict[str, str] | None = None,
    period: tuple[str, str] | None = None,
    missing_inflow: MissingRule = MissingRule(),
    missing_forcings: MissingRule = MissingRule("error"),
    divide_to_reach: pd.Series | None = None,
) -> list[Path]:
    """Write the schema stores of a domain (``lateral_inflow.zarr`` ... ) from external stores.

    Each written store is validated with ``schema`` and written atomically. Returns the paths.
    """
    root = Path(folder)
    written: list[Path] = []
    ids = np.asarray(reach_ids, dtype=np.int64)
    if lateral_inflow is not None:
        ds = read_lateral_inflow(
            lateral_inflow.open(),
            ids,
            period=period,
            variable=lateral_inflow.variable or "Qr",
            id_dim=lateral_inflow.id_dim or schema.DIVIDE_DIM,
            missing=missing_inflow,
            divide_to_reach=divide_to_reach,
            store=lateral_inflow.location,
        )
        ds, _ = schema.validate_lateral_inflow(ds, ids, nan_fill=None)
        written.append(_write(ds, root / schema.LATERAL_INFLOW_STORE))
    if observations is not None:
        ds = read_observations(
            observations.open(),
            gage_ids,
            period=period,
            variable=observations.variable or schema.STREAMFLOW_VAR,
            id_dim=observations.id_dim or schema.GAGE_DIM,
            store=observations.location,
        )
        ds = schema.validate_observations(ds, list(ds[schema.GAGE_DIM].to_numpy()))
        written.append(_write(ds, root / schema.OBSERVATIONS_STORE))
    if forcings is not None:
        ds = read_forcings(
            forcings.open(),
            ids,
            variables=forcing_variables,
            period=period,
            id_dim=forcings.id_dim or schema.DIVIDE_DIM,
            missing=missing_forcings,
            divide_to_reach=divide_to_reach,
            store=forcings.location,
        )
        ds = schema.validate_forcings(ds, ids, list(ds.data_vars))
        written.append(_write(ds, root / schema.FORCINGS_STORE))
    return written


def _write(ds: xr.Dataset, path: Path) -> Path:
    io.write_zarr(ds, path)
    return path
