"""MERIT-Basins adapter -> the input schema.

Inputs: one or more MERIT-Basins river shapefiles (``riv_pfaf_<zone>_*.shp``: ``COMID``,
``NextDownID`` (0 = outlet), ``up1``..``up4``, ``lengthkm``, ``slope``, ``uparea``, optional
``unitarea``), an attribute NetCDF keyed by ``COMID`` and a DDR gauge CSV (``STAID``,
``DRAIN_SQKM``, ``LAT_GAGE``, ``LNG_GAGE``, ``COMID``, optional ``DA_VALID``, ``FLOW_SCALE``).

Gauge convention: a gauge's ``reach_ids`` is ``[COMID]``, the gauge reach itself, whose outflow
is the discharge at the gauge. DDR's MERIT loader instead summed the outflows of the reaches
*upstream* of the gauge reach, which drops the gauge reach's own lateral inflow (and its
``FLOW_SCALE``); that was DDR issue #192, fixed there later. MERIT has no channel geometry:
``top_width``, ``side_slope`` and ``mann_n`` are NaN and Muskingum X is a constant (0.3).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from ddr_pipeline.data import schema
from ddr_pipeline.ingest import stores
from ddr_pipeline.ingest.hydrofabric import FabricTables, as_linestrings, check_network

logger = logging.getLogger(__name__)

RIVER_REQUIRED = ("COMID", "NextDownID", "lengthkm", "slope")
RIVER_OPTIONAL = ("up1", "up2", "up3", "up4", "uparea", "unitarea")
DEFAULT_X = 0.3
DEFAULT_MAX_AREA_DIFF_SQKM = 50.0


class MeritError(ValueError):
    """MERIT input that cannot be converted (names the file, column or COMIDs)."""


def read_rivers(paths: str | Path | Sequence[str | Path]) -> gpd.GeoDataFrame:
    """Read and concatenate MERIT-Basins river shapefiles (required + optional columns).

    Raises:
        MeritError: a shapefile lacking a required column (named with the columns present), or
            COMIDs present in more than one file / twice.
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    frames = []
    for path in paths:
        fields = [str(f) for f in pyogrio.read_info(path)["fields"]]
        missing = [c for c in RIVER_REQUIRED if c not in fields]
        if missing:
            raise MeritError(
                f"{path}: missing column(s) {', '.join(missing)}; columns present: "
                f"{', '.join(fields)}"
            )
        columns = [*RIVER_REQUIRED, *(c for c in RIVER_OPTIONAL if c in fields)]
        frames.append(pyogrio.read_dataframe(path, columns=columns, use_arrow=True))
    rivers = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
    rivers["COMID"] = pd.to_numeric(rivers["COMID"], errors="raise").astype("int64")
    dup = rivers["COMID"].duplicated()
    if dup.any():
        raise MeritError(
            f"duplicated COMIDs: {schema.format_values(rivers['COMID'][dup].unique().tolist())}"
        )
    return rivers


def river_reaches(rivers: gpd.GeoDataFrame, default_x: float = DEFAULT_X) -> gpd.GeoDataFrame:
    """Schema reaches from MERIT rivers (``to_id`` = ``NextDownID``; outside the table = outlet).

    Raises:
        MeritError: non-positive lengths or negative / missing slopes (COMIDs named).
    """
    comid = rivers["COMID"].to_numpy(np.int64)
    to_id = (
        pd.to_numeric(rivers["NextDownID"], errors="coerce").fillna(0).astype("int64").to_numpy()
    )
    outside = (to_id != 0) & ~np.isin(to_id, comid)
    if outside.any():
        logger.info(
            "%d reaches drain outside the given shapefiles: outlets here", int(outside.sum())
        )
        to_id = np.where(outside, 0, to_id)
    length = pd.to_numeric(rivers["lengthkm"], errors="coerce").to_numpy(np.float64) * 1000.0
    slope = pd.to_numeric(rivers["slope"], errors="coerce").to_numpy(np.float64)
    for name, bad in (("lengthkm", ~(length > 0)), ("slope", ~(slope >= 0))):
        if bad.any():
            raise MeritError(
                f"column {name} is missing or out of range for COMID "
                f"{schema.format_values(comid[bad].tolist())}"
            )
    _check_upstream_columns(rivers, comid, to_id)
    return gpd.GeoDataFrame(
        {
            "id": comid,
            "to_id": to_id,
            "length_m": length,
            "slope": slope,
            "x": np.full(comid.size, float(default_x)),
            "top_width": np.nan,
            "side_slope": np.nan,
            "mann_n": np.nan,
        },
        geometry=as_linestrings(rivers.geometry).reset_index(drop=True),
        crs=rivers.crs,
    )


def _check_upstream_columns(rivers: pd.DataFrame, comid: np.ndarray, to_id: np.ndarray) -> None:
    """Log ``up1..up4`` entries that disagree with ``NextDownID`` (NextDownID is authoritative)."""
    ups = [c for c in ("up1", "up2", "up3", "up4") if c in rivers]
    if not ups:
        return
    up = rivers[ups].apply(pd.to_numeric, errors="coerce").fillna(0).astype("int64").to_numpy()
    rows, cols = np.nonzero(up)
    upstream = up[rows, cols]
    pos = pd.Index(comid).get_indexer(upstream)
    known = pos >= 0
    wrong = known & (to_id[np.where(known, pos, 0)] != comid[rows])
    if wrong.any():
        logger.warning(
            "%d up1..up4 entries disagree with NextDownID (e.g. COMID %s); using NextDownID",
            int(wrong.sum()),
            schema.format_values(comid[rows[wrong]].tolist(), 5),
        )


def merit_gauges(
    gauge_info: pd.DataFrame,
    reach_ids: np.ndarray,
    max_area_diff_sqkm: float | None = DEFAULT_MAX_AREA_DIFF_SQKM,
) -> pd.DataFrame:
    """Schema gauges from a DDR gauge table (``stores.read_gage_info(..., require_comid=True)``).

    Filtering (DDR order): ``DA_VALID`` when present, else ``ABS_DIFF <= max_area_diff_sqkm``
    when ``ABS_DIFF`` is present; gauges whose COMID is not a reach are dropped (logged).
    ``reach_ids = [COMID]``; ``FLOW_SCALE`` is kept as ``flow_scale`` (NaN -> 1) when present.
    """
    table = gauge_info
    if "DA_VALID" in table:
        keep = table["DA_VALID"].to_numpy(bool)
        _log_dropped(table, ~keep, "DA_VALID is false")
        table = table[keep]
    elif "ABS_DIFF" in table and max_area_diff_sqkm is not None:
        keep = (table["ABS_DIFF"] <= max_area_diff_sqkm).to_numpy(bool)
        _log_dropped(table, ~keep, f"ABS_DIFF > {max_area_diff_sqkm} km2")
        table = table[keep]
    on_network = table["COMID"].isin(reach_ids).to_numpy(bool)
    _log_dropped(table, ~on_network, "COMID not in the river network")
    table = table[on_network].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "STAID": table["STAID"].astype("string").to_numpy(),
            "reach_ids": [[int(c)] for c in table["COMID"]],
            "drain_sqkm": table["DRAIN_SQKM"].to_numpy(np.float64),
            "lat": table["LAT_GAGE"].to_numpy(np.float64),
            "lon": table["LNG_GAGE"].to_numpy(np.float64),
            "name": table["STANAME"].astype("string").to_numpy(),
        }
    )
    if "FLOW_SCALE" in table:
        out["flow_scale"] = table["FLOW_SCALE"].fillna(1.0).to_numpy(np.float64)
    out["STAID"] = out["STAID"].astype("string")
    return out


def _log_dropped(table: pd.DataFrame, dropped: np.ndarray, reason: str) -> None:
    if dropped.any():
        logger.warning(
            "dropping %d gauges (%s): %s",
            int(dropped.sum()),
            reason,
            schema.format_values(table["STAID"][dropped].tolist()),
        )


def convert_merit(
    rivers: str | Path | Sequence[str | Path],
    gauges_csv: str | Path | pd.DataFrame,
    *,
    attributes: str | Path | None = None,
    attribute_names: Sequence[str] | None = None,
    attributes_id_dim: str = "COMID",
    default_x: float = DEFAULT_X,
    max_area_diff_sqkm: float | None = DEFAULT_MAX_AREA_DIFF_SQKM,
) -> FabricTables:
    """Convert MERIT-Basins shapefile(s) + gauge CSV (+ attribute NetCDF) into the schema tables.

    Raises:
        MeritError: missing columns, bad lengths/slopes, duplicated COMIDs;
        the ``RiverNetwork`` errors for cycles and self-loops (COMIDs named).
    """
    reaches = river_reaches(read_rivers(rivers), default_x)
    check_network(reaches["id"].to_numpy(), reaches["to_id"].to_numpy())
    info = stores.read_gage_info(gauges_csv, require_comid=True)
    gauges = merit_gauges(info, reaches["id"].to_numpy(), max_area_diff_sqkm)
    attrs = None
    if attributes is not None:
        ds = stores.open_store(attributes)
        attrs = stores.read_attributes(
            ds,
            reaches["id"].to_numpy(),
            attribute_names,
            id_dim=attributes_id_dim,
            store=str(attributes),
        )
    logger.info(
        "MERIT: %d reaches, %d outlets, %d gauges",
        len(reaches),
        int((reaches["to_id"] == 0).sum()),
        len(gauges),
    )
    return FabricTables(reaches=reaches, gauges=gauges, attributes=attrs)
