"""DDR dataset bundles -> the input schema (the command ``ddr-convert-ddr``).

A DDR bundle (DeepGroundwater/ddr ``data_sources``; the Juniata sample of DDR PR #193 and
taddyb/ddrs ``examples/juniata``) holds:

* ``conus_adjacency``: a binsparse COO zarr (:mod:`~ddr_pipeline.ingest.adjacency`): the matrix in
  a compact index, ``order`` (index -> COMID, topological), ``length_m`` and ``slope`` aligned with
  ``order`` (plus ``top_width``/``side_slope``/``muskingum_x`` in Lynker stores);
* ``gages_adjacency``: one subgroup per STAID (the gauge's upstream edges, ``gage_idx``);
* ``streamflow``: ``Qr(divide_id, time)`` daily, m3/s (or a depth in mm/day, converted with the
  unit-catchment area); ``observations``: ``streamflow(gage_id, time)``;
* ``attributes``: a NetCDF (or store) keyed by ``COMID`` / ``divide_id``;
* ``gages``: the gauge CSV (``STAID``, ``DRAIN_SQKM``, ``LAT_GAGE``, ``LNG_GAGE``, ``COMID``, ...);
* ``statistics``: DDR's attribute statistics JSON (kept beside the output for comparison).

Each reach keeps its DDR id (COMID). A gauge reads the outflow of its own reach (``reach_ids =
[COMID]``, DDR after PR #192); its gauge subgroup must agree with the network (same reach, same
upstream set) or the conversion fails naming the STAID. Reaches carry no geometry (the bundle has
none): the ``geometry`` column is empty.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from ddr_pipeline.data import io, schema
from ddr_pipeline.ingest import stores
from ddr_pipeline.ingest.adjacency import Adjacency, AdjacencyError, read_adjacency
from ddr_pipeline.ingest.hydrofabric import FabricTables, check_network
from ddr_pipeline.ingest.lateral_inflow import LateralInflowSource, NwmInflow, StoreInflow
from ddr_pipeline.ingest.merit import DEFAULT_MAX_AREA_DIFF_SQKM, DEFAULT_X, merit_gauges
from ddr_pipeline.network import RiverNetwork

logger = logging.getLogger(__name__)

#: Name of DDR's attribute statistics JSON in a converted folder (not read by the pipelines).
STATISTICS_FILE = "ddr_attribute_statistics.json"
CONVERTER_VERSION = "1.0.0"
STATISTICS_KEYS = ("min", "max", "mean", "std", "p10", "p90")


class DdrError(ValueError):
    """A DDR bundle that cannot be converted (names the file, store, variable or ids)."""


@dataclass(frozen=True)
class DdrSources:
    """Where the pieces of a DDR bundle are (DDR's ``data_sources`` keys)."""

    conus_adjacency: str
    gages: str
    gages_adjacency: str | None = None
    attributes: str | None = None
    streamflow: str | None = None
    observations: str | None = None
    statistics: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], root: str | Path = ".") -> DdrSources:
        """Sources from a DDR config's ``data_sources`` block; relative paths are under ``root``.

        ``statistics`` may be DDR's statistics folder: the JSON inside it that names the
        attribute file (``<geodataset>_attribute_statistics_<attributes file>.json``) is used.

        Raises:
            DdrError: no ``data_sources`` block, or no ``conus_adjacency`` / ``gages`` in it.
        """
        block = config.get("data_sources")
        if not isinstance(block, Mapping):
            raise DdrError("DDR config: no data_sources block")
        missing = [k for k in ("conus_adjacency", "gages") if not block.get(k)]
        if missing:
            raise DdrError(f"DDR config: data_sources lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        values = {k: _resolve(str(v), root) for k, v in block.items() if k in known and v}
        sources = cls(**values)
        if sources.statistics is None and sources.attributes is not None:
            sources = replace(
                sources, statistics=str(Path(sources.attributes).parent / "statistics")
            )
        return sources.with_statistics_file(str(config.get("geodataset", "merit")))

    def with_statistics_file(self, geodataset: str) -> DdrSources:
        """``statistics`` resolved from a folder to DDR's JSON file inside it (None if absent)."""
        if self.statistics is None or not Path(self.statistics).is_dir():
            return self
        if self.attributes is None:
            return replace(self, statistics=None)
        name = f"{geodataset}_attribute_statistics_{Path(self.attributes).name}.json"
        found = Path(self.statistics) / name
        return replace(self, statistics=str(found) if found.is_file() else None)


def _resolve(location: str, root: str | Path) -> str:
    if location.startswith("s3://") or Path(location).is_absolute():
        return location
    return str(Path(root) / location)


# ----------------------------------------------------------------------------- network


def bundle_reaches(adjacency: Adjacency, default_x: float = DEFAULT_X) -> gpd.GeoDataFrame:
    """Schema reaches from a DDR network adjacency store read by :func:`read_adjacency`.

    ``x`` is the store's ``muskingum_x`` where given, else ``default_x``; ``top_width`` and
    ``side_slope`` come from the store where given (Lynker), else NaN; ``mann_n`` is NaN.

    Raises:
        DdrError: the store lacks ``length_m`` / ``slope``, or holds non-positive lengths, negative
            or missing slopes (COMIDs named).
    """
    channel = adjacency.channel
    absent = [c for c in ("length_m", "slope") if c not in channel]
    if absent:
        raise DdrError(
            f"adjacency store: no {' / '.join(absent)} array aligned with `order` "
            "(DDR stores carry them since DDR PR #179; rebuild the store with DDR's engine)"
        )
    ids = adjacency.ids
    for column, bad in (
        ("length_m", ~(channel["length_m"].to_numpy() > 0)),
        ("slope", ~(channel["slope"].to_numpy() >= 0)),
    ):
        if bad.any():
            raise DdrError(
                f"adjacency store: {column} is missing or out of range for COMID "
                f"{schema.format_values(ids[bad].tolist())}"
            )
    n = ids.size

    def column(name: str, fill: float) -> np.ndarray:
        values = channel[name].to_numpy(np.float64) if name in channel else np.full(n, np.nan)
        return np.where(np.isnan(values), fill, values)

    return gpd.GeoDataFrame(
        {
            "id": ids.astype(np.int64),
            "to_id": adjacency.to_ids.astype(np.int64),
            "length_m": channel["length_m"].to_numpy(np.float64),
            "slope": channel["slope"].to_numpy(np.float64),
            "x": column("x", float(default_x)),
            "top_width": column("top_width", np.nan),
            "side_slope": column("side_slope", np.nan),
            "mann_n": np.full(n, np.nan),
        },
        geometry=gpd.GeoSeries([None] * n, crs="EPSG:4326"),
        crs="EPSG:4326",
    )


# ----------------------------------------------------------------------------- gauges


@dataclass(frozen=True)
class GaugeGroup:
    """One gauge subgroup of a DDR gauge adjacency store."""

    reach_ids: list[int]  # the gauge reach(es): ``order[gage_idx]`` (``gage_idxs`` if several)
    members: np.ndarray  # network indices of the gauge reach(es) and everything upstream


def read_gauge_groups(path: str | Path, order: np.ndarray) -> dict[str, GaugeGroup]:
    """Every gauge subgroup of a DDR gauge adjacency store, in the network's index space.

    Args:
        path: the ``*_gages_adjacency.zarr`` store.
        order: the network store's ``order`` (index -> reach id); subgroup indices refer to it.

    Raises:
        AdjacencyError: a subgroup without ``gage_idx``, or indices outside ``order``.
    """
    root = zarr.open_group(str(path), mode="r")
    out: dict[str, GaugeGroup] = {}
    for name, group in sorted(root.groups()):
        if "gage_idx" not in group.attrs:
            raise AdjacencyError(f"{path}/{name}: no gage_idx attribute")
        origins = np.asarray(group.attrs.get("gage_idxs", [group.attrs["gage_idx"]]), np.int64)
        rows = np.asarray(group["indices_0"][...], np.int64)
        cols = np.asarray(group["indices_1"][...], np.int64)
        members = np.unique(np.concatenate([rows, cols, origins]))
        if members.size and (members.min() < 0 or members.max() >= order.size):
            raise AdjacencyError(
                f"{path}/{name}: indices outside the network store's {order.size} reaches"
            )
        staid = str(schema.normalize_staid(pd.Series([name])).iloc[0])
        out[staid] = GaugeGroup([int(i) for i in order[origins]], members)
    return out


def check_gauge_groups(
    gauges: pd.DataFrame, groups: Mapping[str, GaugeGroup], network: RiverNetwork
) -> pd.DataFrame:
    """Keep the gauges that have a subgroup; check each subgroup against the network.

    Gauges without a subgroup are dropped (logged, as DDR does).

    Raises:
        DdrError: a subgroup whose gauge reach differs from the gauge table's, or whose upstream
            set differs from the network's upstream closure (STAID and reach counts named).
    """
    has_group = gauges["STAID"].astype(str).isin(list(groups)).to_numpy()
    if (~has_group).any():
        logger.warning(
            "dropping %d gauges without a subgroup in the gauge adjacency store: %s",
            int((~has_group).sum()),
            schema.format_values(gauges.loc[~has_group, "STAID"].tolist()),
        )
    kept = gauges[has_group].reset_index(drop=True)
    for staid, reach_ids in zip(kept["STAID"].astype(str), kept["reach_ids"], strict=True):
        group = groups[staid]
        if sorted(group.reach_ids) != sorted(int(r) for r in reach_ids):
            raise DdrError(
                f"gauge {staid}: the gauge CSV puts it on COMID {list(reach_ids)} but its "
                f"adjacency subgroup on {group.reach_ids}"
            )
        closure = network.upstream_closure(network.index_of(np.asarray(group.reach_ids)))
        expected = np.sort(network.ids[closure])
        found = np.sort(network.ids[group.members])
        if not np.array_equal(expected, found):
            extra = np.setdiff1d(found, expected)
            lacking = np.setdiff1d(expected, found)
            raise DdrError(
                f"gauge {staid}: adjacency subgroup holds {found.size} reaches, the network's "
                f"upstream closure {expected.size} (not upstream: "
                f"{schema.format_values(extra.tolist())}; absent: "
                f"{schema.format_values(lacking.tolist())})"
            )
    return kept


def bundle_gauges(
    gages_csv: str | Path,
    network: RiverNetwork,
    groups: Mapping[str, GaugeGroup] | None,
    max_area_diff_sqkm: float | None = DEFAULT_MAX_AREA_DIFF_SQKM,
) -> pd.DataFrame:
    """Schema gauges from the gauge CSV, checked against the gauge subgroups when given.

    A CSV without ``COMID`` takes each gauge's reach from its subgroup (``gage_idx``).
    """
    info = stores.read_gage_info(gages_csv, require_comid=groups is None)
    if "COMID" not in info:
        known = info["STAID"].isin(list(groups or {}))
        info = info[known].copy()
        info["COMID"] = [groups[s].reach_ids[0] for s in info["STAID"]]
    gauges = merit_gauges(info, network.ids, max_area_diff_sqkm)
    return gauges if groups is None else check_gauge_groups(gauges, groups, network)


# ----------------------------------------------------------------------------- attributes


def bundle_attributes(
    location: str, reach_ids: np.ndarray, names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Schema attributes from DDR's attribute NetCDF / store (keyed by ``COMID`` or
    ``divide_id``).

    Raises:
        StoreError: absent attributes or an id coordinate other than ``COMID`` / ``divide_id``.
    """
    ds = stores.open_store(location)
    id_dim = next((d for d in ("COMID", schema.DIVIDE_DIM) if d in ds.coords), None)
    if id_dim is None:
        raise stores.StoreError(
            f"{location}: no COMID or divide_id coordinate; coordinates: "
            f"{', '.join(map(str, ds.coords))}"
        )
    return stores.read_attributes(ds, reach_ids, names, id_dim=id_dim, store=location)


def unit_areas(location: str, variable: str, reach_ids: np.ndarray) -> pd.Series:
    """Unit-catchment area (km2) by reach id from an attribute variable (for mm/day Q')."""
    table = bundle_attributes(location, reach_ids, [variable])
    return pd.Series(table[variable].to_numpy(), index=table["id"].to_numpy())


# ----------------------------------------------------------------------------- statistics


def read_statistics(path: str | Path) -> dict[str, dict[str, float]]:
    """DDR's attribute statistics JSON (``{attribute: {min, max, mean, std, p10, p90}}``).

    Raises:
        DdrError: an entry without one of the six statistics (attribute and keys named).
    """
    document = json.loads(Path(path).read_text())
    for name, entry in document.items():
        lacking = [k for k in STATISTICS_KEYS if k not in entry]
        if lacking:
            raise DdrError(f"{path}: attribute {name!r} lacks {', '.join(lacking)}")
    return document


def compare_statistics(
    ddr: Mapping[str, Mapping[str, float]], attributes: pd.DataFrame
) -> pd.DataFrame:
    """DDR's statistics beside the same statistics of ``attributes`` (all reaches, std ddof=0).

    Returns one row per attribute present in both: ``ddr_mean``, ``mean``, ``ddr_std``, ``std``
    and ``max_rel_diff`` (largest relative difference over min, max, mean, std, p10, p90).
    """
    rows = []
    for name in (c for c in attributes.columns if c in ddr):
        values = attributes[name].to_numpy(np.float64)
        ours = {
            "min": np.nanmin(values),
            "max": np.nanmax(values),
            "mean": np.nanmean(values),
            "std": np.nanstd(values),
            "p10": np.nanpercentile(values, 10),
            "p90": np.nanpercentile(values, 90),
        }
        rel = [abs(ours[k] - ddr[name][k]) / max(abs(ddr[name][k]), 1e-12) for k in STATISTICS_KEYS]
        rows.append(
            {
                "attribute": name,
                "ddr_mean": ddr[name]["mean"],
                "mean": ours["mean"],
                "ddr_std": ddr[name]["std"],
                "std": ours["std"],
                "max_rel_diff": max(rel),
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- conversion


@dataclass(frozen=True)
class DdrBundle:
    """A converted DDR bundle: the schema tables plus DDR's statistics (if the bundle has them)."""

    tables: FabricTables
    statistics: dict[str, dict[str, float]] | None
    statistics_path: Path | None


def convert_ddr(
    sources: DdrSources,
    *,
    attribute_names: Sequence[str] | None = None,
    default_x: float = DEFAULT_X,
    max_area_diff_sqkm: float | None = DEFAULT_MAX_AREA_DIFF_SQKM,
) -> DdrBundle:
    """Convert a DDR bundle's network, gauges and attributes into the schema tables.

    The time series (``streamflow``, ``observations``) are written by :func:`write_ddr_stores`.

    Raises:
        AdjacencyError / DdrError / StoreError: a malformed store, gauge or attribute (named).
    """
    adjacency = read_adjacency(sources.conus_adjacency)
    reaches = bundle_reaches(adjacency, default_x)
    check_network(reaches["id"].to_numpy(), reaches["to_id"].to_numpy())
    network = RiverNetwork.from_ids(reaches["id"].to_numpy(), reaches["to_id"].to_numpy())
    groups = (
        read_gauge_groups(sources.gages_adjacency, adjacency.ids)
        if sources.gages_adjacency
        else None
    )
    gauges = bundle_gauges(sources.gages, network, groups, max_area_diff_sqkm)
    attrs = (
        bundle_attributes(sources.attributes, network.ids, attribute_names)
        if sources.attributes
        else None
    )
    stats = read_statistics(sources.statistics) if sources.statistics else None
    logger.info(
        "DDR bundle (%s): %d reaches, %d edges, %d gauges",
        adjacency.geodataset or "?",
        network.n_reaches,
        int((reaches["to_id"] != 0).sum()),
        len(gauges),
    )
    return DdrBundle(
        FabricTables(reaches=reaches, gauges=gauges, attributes=attrs),
        stats,
        Path(sources.statistics) if sources.statistics else None,
    )


def inflow_source(
    sources: DdrSources,
    reach_ids: np.ndarray,
    *,
    kind: Literal["store", "nwm"] = "store",
    unit_area: str | None = None,
    missing: stores.MissingRule | None = None,
) -> LateralInflowSource | None:
    """The lateral-inflow source of a bundle: DDR's ``streamflow`` store (``Qr``; a depth is
    converted with the ``unit_area`` attribute, km2) or an NWM-style output (``kind="nwm"``)."""
    if not sources.streamflow:
        return None
    if kind == "nwm":
        return NwmInflow(sources.streamflow)
    areas = (
        unit_areas(sources.attributes, unit_area, reach_ids)
        if unit_area and sources.attributes
        else None
    )
    return StoreInflow(sources.streamflow, area_km2=areas, missing=missing or stores.MissingRule())


def write_ddr_stores(  # noqa: PLR0913
    sources: DdrSources,
    folder: str | Path,
    reach_ids: np.ndarray,
    gage_ids: Sequence[str],
    *,
    period: tuple[str, str] | None = None,
    inflow: LateralInflowSource | None = None,
    license: str = "as the DDR bundle",
) -> list[Path]:
    """Write ``lateral_inflow.zarr`` and ``observations.zarr`` (daily, validated).

    Args:
        inflow: the lateral-inflow source (default :func:`inflow_source` of ``sources``).
        license: the ``license`` attribute of the written stores.
    """
    root = Path(folder)
    written: list[Path] = []
    inflow = inflow or inflow_source(sources, reach_ids)
    if inflow is not None:
        ds = inflow.read(reach_ids, period)
        ds, _ = schema.validate_lateral_inflow(ds, reach_ids, nan_fill=None)
        written.append(
            _write_store(ds, root / schema.LATERAL_INFLOW_STORE, inflow.location, license)
        )
    if sources.observations:
        ds = stores.read_observations(
            stores.open_store(sources.observations),
            gage_ids,
            period=period,
            store=sources.observations,
        )
        ds = schema.validate_observations(ds, list(ds[schema.GAGE_DIM].to_numpy()))
        written.append(
            _write_store(ds, root / schema.OBSERVATIONS_STORE, sources.observations, license)
        )
    return written


def _write_store(ds: xr.Dataset, path: Path, source: str, license: str) -> Path:
    ds.attrs.update(
        {
            "source": f"DDR bundle store {Path(source).name}",
            "license": license,
            "converter": "ddr-convert-ddr",
            "converter_version": CONVERTER_VERSION,
        }
    )
    io.write_zarr(ds, path)
    return path


def keep_statistics(bundle: DdrBundle, folder: str | Path) -> Path | None:
    """Copy DDR's statistics JSON into ``folder`` as :data:`STATISTICS_FILE` (None if absent)."""
    if bundle.statistics_path is None:
        return None
    target = Path(folder) / STATISTICS_FILE
    shutil.copyfile(bundle.statistics_path, target)
    return target
