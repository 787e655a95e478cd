"""An NWM channel domain (RouteLink + LAKEPARM + hourly CHRTOUT) -> a schema folder with lakes.

What a WRF-Hydro / t-route run of a domain needs, in the schema (docs/data_formats.md,
docs/datasets/nwm.md):

* ``reaches.parquet``: the RouteLink links with every waterbody collapsed onto its outlet link
  (:mod:`ddr_pipeline.ingest.nwm_lakes`); channel columns from RouteLink (``Length``, ``So``,
  ``MusX``, ``n``, ``TopWdth``, ``ChSlp``; extra ``bottom_width``, ``alt``, ``order``,
  ``NHDWaterbodyComID``), Point geometry at the link's RouteLink lon/lat (approximate);
* ``lakes.parquet``: LAKEPARM's level-pool parameters at the outlet links;
* ``gauges.parquet``: RouteLink's ``gages`` (drainage area unknown: NaN);
* hourly stores (a short NWM case holds no whole day, so the daily stores cannot carry it):
  ``lateral_inflow_hourly.zarr`` = CHRTOUT ``q_lateral`` summed onto the kept links,
  ``reference_outflow_hourly.zarr`` = CHRTOUT ``streamflow`` (the outlet link's value is the
  lake's outflow), ``observations_hourly.zarr`` = the USGS time slices' valid records averaged
  over each hour (when given). Times are NWM valid times: the value stamped ``t`` belongs to the
  hour ending at ``t``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline.data import assimilation_obs, io, lakes, schema
from ddr_pipeline.ingest import nwm_lakes, stores

logger = logging.getLogger(__name__)

CONVERTER_VERSION = "1.0.0"
#: RouteLink variable -> reaches column (the schema's where it has one).
REACH_COLUMNS = {
    "link": schema.ID_COL,
    "to": schema.TO_ID_COL,
    "Length": "length_m",
    "So": "slope",
    "MusX": "x",
    "n": "mann_n",
    "TopWdth": "top_width",
    "ChSlp": "side_slope",
    "BtmWdth": "bottom_width",
    "alt": "alt",
    "order": "order",
    nwm_lakes.WATERBODY: nwm_lakes.WATERBODY,
}
ROUTELINK_VARIABLES = (*REACH_COLUMNS, "gages", "lat", "lon")
LATERAL_VARIABLE, STREAMFLOW_VARIABLE = "q_lateral", "streamflow"
#: t-route's ``qc_threshold`` default: time-slice records of lower quality are not used.
MIN_QUALITY = 1.0


def _decoded(values: pd.Series) -> pd.Series:
    """Byte strings (netCDF char arrays) as stripped str."""
    return values.map(lambda v: (v.decode() if isinstance(v, bytes) else str(v)).strip())


def read_routelink(path: str | Path) -> pd.DataFrame:
    """The RouteLink variables this converter uses, one row per link (``gages`` as str)."""
    with xr.open_dataset(path) as ds:
        missing = [v for v in ROUTELINK_VARIABLES if v not in ds.variables]
        if missing:
            raise KeyError(f"{path}: RouteLink lacks {missing}")
        table = pd.DataFrame({v: ds[v].to_numpy() for v in ROUTELINK_VARIABLES})
    table["gages"] = _decoded(table["gages"])
    return table


def read_lakeparm(path: str | Path) -> pd.DataFrame:
    """LAKEPARM's variables on its ``feature_id`` dimension as columns."""
    with xr.open_dataset(path) as ds:
        names = [v for v in ds.data_vars if ds[v].dims == ds["lake_id"].dims]
        return pd.DataFrame({v: ds[v].to_numpy() for v in names})


#: NWM ``reservoir_index`` types: how the operational NWM ran each lake (t-route's numbering).
RESERVOIR_TYPES = {
    1: "level pool",
    2: "USGS persistence",
    3: "USACE persistence",
    4: "RFC forecast",
}
RESERVOIR_TYPE_COL = "nwm_reservoir_type"


def read_reservoir_types(path: str | Path) -> pd.Series:
    """``reservoir_type`` by ``lake_id`` of an NWM ``reservoir_index`` file (see RESERVOIR_TYPES)."""
    with xr.open_dataset(path) as ds:
        return pd.Series(ds["reservoir_type"].to_numpy(), index=ds["lake_id"].to_numpy())


def read_chrtout(paths: Sequence[str | Path], variables: Sequence[str]) -> xr.Dataset:
    """``variables`` of hourly CHRTOUT files as ``(feature_id, time)`` in m3/s, time sorted.

    Units are checked and converted as the NWM lateral-inflow reader does
    (:func:`stores.unit_conversion`); a step other than one hour raises ``StoreError``.
    """
    if not paths:
        raise stores.StoreError("no CHRTOUT files given")
    parts = []
    for path in sorted(map(str, paths)):
        with xr.open_dataset(path) as ds:
            missing = [v for v in variables if v not in ds.data_vars]
            if missing:
                raise stores.StoreError(f"{path}: CHRTOUT lacks {missing}")
            # a CHRTOUT variable is (feature_id,): its valid time is the file's 1-long time
            time = ds[schema.TIME_DIM].to_numpy().reshape(-1)[:1]
            part = ds[list(variables)].load().expand_dims({schema.TIME_DIM: time}, axis=-1)
        for name in variables:
            scale, offset = stores.unit_conversion(part[name], "m3 s-1", path)
            part[name] = (part[name] * scale + offset).assign_attrs(units="m3 s-1")
        parts.append(part)
    out = xr.concat(parts, dim=schema.TIME_DIM).sortby(schema.TIME_DIM)
    steps = np.unique(np.diff(out[schema.TIME_DIM].to_numpy()).astype("timedelta64[s]"))
    if steps.size and (steps != np.timedelta64(schema.SECONDS_PER_HOUR, "s")).any():
        raise stores.StoreError(f"CHRTOUT: steps of {steps.astype(int).tolist()} s, not hourly")
    return out.transpose("feature_id", schema.TIME_DIM)


def network_reaches(links: pd.DataFrame) -> gpd.GeoDataFrame:
    """The schema's reaches of collapsed RouteLink rows (Point geometry, approximate)."""
    table = links[list(REACH_COLUMNS)].rename(columns=REACH_COLUMNS)
    table[schema.TO_ID_COL] = table[schema.TO_ID_COL].astype(np.int64)
    geometry = gpd.points_from_xy(links["lon"], links["lat"])
    reaches = gpd.GeoDataFrame(table, geometry=geometry, crs="EPSG:4326")
    reaches["geometry_approximate"] = True
    return gpd.GeoDataFrame(schema.validate_reaches(reaches), crs="EPSG:4326")


def network_gauges(routelink: pd.DataFrame, lateral_target: pd.Series) -> pd.DataFrame:
    """Gauges of RouteLink's ``gages``, each on its link (a link inside a lake: on the outlet)."""
    gauged = routelink[routelink["gages"].str.fullmatch(r"\d{8,15}")]
    reach = lateral_target.reindex(gauged["link"].to_numpy()).to_numpy()
    moved = reach != gauged["link"].to_numpy()
    if moved.any():
        logger.warning(
            "gauges %s sit inside lakes: placed on the lakes' outlet links",
            schema.format_values(gauged.loc[moved, "gages"].tolist()),
        )
    return pd.DataFrame(
        {
            schema.STAID_COL: gauged["gages"].to_numpy(),
            schema.REACH_IDS_COL: [[int(r)] for r in reach],
            "drain_sqkm": np.nan,  # RouteLink carries no drainage area
            "lat": gauged["lat"].to_numpy(np.float64),
            "lon": gauged["lon"].to_numpy(np.float64),
        }
    )


def _store(da: xr.DataArray, dim: str, name: str, attrs: dict[str, str]) -> xr.Dataset:
    """``da`` as a float32 ``(dim, time)`` store variable named ``name``."""
    out = da.rename({da.dims[0]: dim}).reset_coords(drop=True).astype(np.float32).rename(name)
    out.attrs = {"units": "m3 s-1", "time_stamp": "end of the hour (NWM valid time)"}
    return out.to_dataset().assign_attrs(attrs)


def hourly_observations(
    slices: assimilation_obs.TimeSlices, stations: Sequence[str], times: np.ndarray
) -> xr.DataArray:
    """``(gage_id, time)`` mean of each station's valid records in the hour ending at each time."""
    start = pd.Timestamp(times[0]) - pd.Timedelta(hours=1)
    means = assimilation_obs.per_step(
        slices, stations, start, float(schema.SECONDS_PER_HOUR), len(times), min_quality=MIN_QUALITY
    )
    return xr.DataArray(
        means.T,
        dims=(schema.GAGE_DIM, schema.TIME_DIM),
        coords={schema.GAGE_DIM: list(stations), schema.TIME_DIM: times},
    )


@dataclass(frozen=True)
class NwmDomain:
    """Everything :func:`convert_nwm_domain` writes, before writing."""

    reaches: gpd.GeoDataFrame
    lakes: pd.DataFrame
    gauges: pd.DataFrame
    lateral_inflow: xr.Dataset
    reference: xr.Dataset
    observations: xr.Dataset | None
    collapsed: nwm_lakes.CollapsedLakes


def build_nwm_domain(
    routelink: pd.DataFrame,
    lakeparm: pd.DataFrame,
    chrtout: xr.Dataset,
    *,
    timeslices: assimilation_obs.TimeSlices | None = None,
    reservoir_types: pd.Series | None = None,
    missing: Literal["error", "channel"] = "error",
    extra: Literal["error", "drop"] = "error",
    attrs: dict[str, str] | None = None,
) -> NwmDomain:
    """The schema tables and hourly stores of an NWM domain (module docstring); pure.

    ``reservoir_types`` (lake_id -> NWM reservoir type, :func:`read_reservoir_types`) adds the
    column ``nwm_reservoir_type`` to the lakes (absent from the index: 1, level pool).
    """
    collapsed = nwm_lakes.collapse_lakes(
        routelink, lakeparm, missing=missing, extra=extra, source=(attrs or {}).get("source", "")
    )
    reaches = network_reaches(collapsed.links)
    ids = reaches[schema.ID_COL].to_numpy()
    table = schema.validate_lakes(collapsed.lakes, ids)
    if reservoir_types is not None:  # an extra column: which lakes NWM did not run as level pools
        known = reservoir_types.reindex(table[schema.LAKE_ID_COL].to_numpy())
        table[RESERVOIR_TYPE_COL] = known.fillna(1).astype(np.int64).to_numpy()
    gauges = schema.validate_gauges(network_gauges(routelink, collapsed.lateral_target), ids)
    meta = {**(attrs or {}), "converter": __name__, "converter_version": CONVERTER_VERSION}
    qlat = nwm_lakes.collapse_lateral(chrtout[LATERAL_VARIABLE], collapsed.lateral_target)
    lateral = _store(qlat.sel(feature_id=ids), schema.DIVIDE_DIM, schema.LATERAL_INFLOW_VAR, meta)
    flow = chrtout[STREAMFLOW_VARIABLE].sel(feature_id=ids)
    reference = _store(flow, schema.DIVIDE_DIM, schema.REFERENCE_VAR, meta)
    observations = None
    if timeslices is not None:
        times = chrtout[schema.TIME_DIM].to_numpy()
        obs = hourly_observations(timeslices, gauges[schema.STAID_COL].tolist(), times)
        observations = _store(obs, schema.GAGE_DIM, schema.STREAMFLOW_VAR, meta)
    return NwmDomain(reaches, table, gauges, lateral, reference, observations, collapsed)


def write_nwm_domain(domain: NwmDomain, out: str | Path) -> list[Path]:
    """Write the folder (tables validated, stores checked by :func:`schema.validate_hourly`)."""
    root = Path(out)
    ids = domain.reaches[schema.ID_COL].to_numpy()
    io.write_reaches(domain.reaches, root / schema.REACHES_FILE)
    io.write_table(domain.gauges, root / schema.GAUGES_FILE)
    lakes.write_lakes(domain.lakes, root, ids)
    written = [root / schema.REACHES_FILE, root / schema.GAUGES_FILE, root / schema.LAKES_FILE]
    hourly = [
        (
            domain.lateral_inflow,
            schema.LATERAL_INFLOW_VAR,
            ids,
            schema.DIVIDE_DIM,
            schema.LATERAL_INFLOW_HOURLY_STORE,
        ),
        (
            domain.reference,
            schema.REFERENCE_VAR,
            ids,
            schema.DIVIDE_DIM,
            schema.REFERENCE_HOURLY_STORE,
        ),
    ]
    if domain.observations is not None:
        stations = domain.gauges[schema.STAID_COL].to_numpy()
        hourly.append(
            (
                domain.observations,
                schema.STREAMFLOW_VAR,
                stations,
                schema.GAGE_DIM,
                schema.OBSERVATIONS_HOURLY_STORE,
            )
        )
    for ds, variable, wanted, dim, name in hourly:
        schema.validate_hourly(ds, variable, wanted, dim, name)
        io.write_zarr(ds, root / name)
        written.append(root / name)
    return written
