"""Delaware River Basin (USGS NHM ``drb_2yr``, pywatershed, CC0 1.0) adapter -> input schema.

Converts the NetCDF files of ``drb_nhm_2yr/`` into the schema of :mod:`ddr_pipeline.data.schema`
(see ``data/01_raw/drb/README.md`` for every derived choice). Used by ``ddr-convert-drb``.
All alignment is by id (``nhm_seg``, ``nhm_id``, ``poi_id``), never by position.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from ddr_pipeline.data import io, schema

logger = logging.getLogger(__name__)

CONVERTER_VERSION = "1.0.0"
CFS_TO_M3S = 0.028316846592  # exact: 1 ft3 = 0.3048**3 m3
ACRE_TO_KM2 = 0.0040468564224  # exact: 1 acre = 4046.8564224 m2
SQMI_TO_KM2 = 2.589988110336  # exact: 1 mi2 = 1609.344**2 m2
INCH_TO_MM = 25.4
CLIMATE_START, CLIMATE_END = "1979-01-01", "1979-12-31"  # 1980 is the demo test period
UPAREA_FLOOR_KM2 = 0.01  # log10_uparea floor for segments whose seg_cum_area is 0
SOURCE = "USGS National Hydrologic Model, pywatershed drb_2yr domain (Delaware River Basin)"
LICENSE = "CC0 1.0 (public domain dedication), USGS pywatershed drb_2yr"

# HRU properties aggregated per reach (area-weighted mean): name -> source file
HRU_PROPERTIES: dict[str, str] = {
    "hru_elev": "parameters_dis_hru.nc",
    "hru_slope": "parameters_dis_hru.nc",
    "soil_moist_max": "parameters_PRMSSoilzone.nc",
    "soil_rechr_max_frac": "parameters_PRMSSoilzone.nc",
    "soil2gw_max": "parameters_PRMSSoilzone.nc",
    "ssr2gw_rate": "parameters_PRMSSoilzone.nc",
    "slowcoef_lin": "parameters_PRMSSoilzone.nc",
    "hru_percent_imperv": "parameters_PRMSSoilzone.nc",
    "dprst_frac": "parameters_PRMSSoilzone.nc",
    "carea_max": "parameters_PRMSRunoff.nc",
    "smidx_coef": "parameters_PRMSRunoff.nc",
    "covden_sum": "parameters_PRMSCanopy.nc",
}
# categorical HRU properties -> area fraction per class: attribute -> (variable, class value)
HRU_CLASS_FRACTIONS: dict[str, tuple[str, int]] = {
    "sand_frac": ("soil_type", 1),
    "bare_frac": ("cov_type", 0),
    "grass_frac": ("cov_type", 1),
    "tree_frac": ("cov_type", 3),
}
SEGMENT_ATTRIBUTES: tuple[str, ...] = ("length_m", "slope", "seg_elev", "log10_uparea")
CLIMATE_ATTRIBUTES: tuple[str, ...] = ("meanP", "meanPET", "aridity", "meanTemp")
ATTRIBUTE_COLUMNS: tuple[str, ...] = (
    *SEGMENT_ATTRIBUTES,
    "hru_area_sqkm",
    *HRU_PROPERTIES,
    *HRU_CLASS_FRACTIONS,
    *CLIMATE_ATTRIBUTES,
)


@dataclass(frozen=True)
class DRBSummary:
    """Counts reported by :func:`convert_drb`."""

    n_reaches: int
    n_outlets: int
    n_reaches_without_hru: int
    n_filled_upstream: int
    n_gauges: int
    n_gauges_dropped: int
    n_gauges_well_observed_1980: int
    n_days: int


# --- reading -------------------------------------------------------------------------------------
def open_source(source: Path, name: str) -> xr.Dataset:
    """Open and load one NetCDF file of the DRB folder (engine h5netcdf)."""
    path = Path(source) / name
    if not path.exists():
        raise FileNotFoundError(f"DRB source file not found: {path}")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def hru_table(source: Path) -> pd.DataFrame:
    """HRU properties indexed by ``nhm_id`` (joined by id across parameter files)."""
    base = open_source(source, "parameters_dis_hru.nc")
    table = pd.DataFrame(
        {v: base[v].to_numpy() for v in ("hru_area", "hru_lon", "hru_lat")},
        index=pd.Index(base["nhm_id"].to_numpy().astype(np.int64), name="nhm_id"),
    )
    channel = open_source(source, "parameters_PRMSChannel.nc")
    wanted: dict[str, list[str]] = {"parameters_PRMSChannel.nc": ["hru_segment"]}
    for var, fname in HRU_PROPERTIES.items():
        wanted.setdefault(fname, []).append(var)
    for var, _ in HRU_CLASS_FRACTIONS.values():
        wanted.setdefault("parameters_PRMSSoilzone.nc", []).append(var)
    for fname, variables in wanted.items():
        ds = base if fname == "parameters_dis_hru.nc" else channel
        if fname not in ("parameters_dis_hru.nc", "parameters_PRMSChannel.nc"):
            ds = open_source(source, fname)
        idx = pd.Index(ds["nhm_id"].to_numpy().astype(np.int64))
        part = pd.DataFrame({v: ds[v].to_numpy() for v in dict.fromkeys(variables)}, index=idx)
        table = table.join(part.loc[table.index], how="left")
    return table


# --- HRU -> reach aggregation --------------------------------------------------------------------
def hru_weights(hru_reach_index: np.ndarray, hru_area: np.ndarray, n_reaches: int) -> sp.csr_matrix:
    """Sparse (n_reaches, n_hru) matrix of area weights; rows sum to 1 (0 for reaches w/o HRU).

    ``hru_reach_index`` is the 0-based reach index of each HRU, -1 = drains to no reach.
    """
    keep = hru_reach_index >= 0
    rows = hru_reach_index[keep]
    cols = np.flatnonzero(keep)
    area = np.asarray(hru_area, dtype=np.float64)[keep]
    total = np.bincount(rows, weights=area, minlength=n_reaches)
    weights = area / total[rows]
    return sp.csr_matrix((weights, (rows, cols)), shape=(n_reaches, len(hru_reach_index)))


def _nearest_upstream(
    down: np.ndarray, has_data: np.ndarray, tie_break: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """For each target, the closest upstream reach with data (ties: largest ``tie_break``); -1."""
    n = len(down)
    edges = pd.DataFrame({"node": down, "up": np.arange(n)})
    edges = edges[edges["node"] >= 0]
    frontier = pd.DataFrame({"target": targets, "node": targets})
    found = pd.Series(-1, index=pd.Index(targets, name="target"), dtype=np.int64)
    for _ in range(n):
        if frontier.empty:
            break
        step = frontier.merge(edges, on="node")[["target", "up"]]
        step = step.rename(columns={"up": "node"})
        hits = step[has_data[step["node"].to_numpy()]]
        if not hits.empty:
            hits = hits.assign(rank=tie_break[hits["node"].to_numpy()])
            best = hits.sort_values(["target", "rank"]).groupby("target")["node"].last()
            found.loc[best.index] = best.to_numpy()
        frontier = step[~step["target"].isin(hits["target"])]
    return found.loc[targets].to_numpy()


def donor_index(down: np.ndarray, has_data: np.ndarray, tie_break: np.ndarray) -> np.ndarray:
    """Index of the reach whose values fill each reach (itself when it has data).

    Reaches without data take the nearest downstream reach with data; when none exists down to the
    outlet, the nearest upstream reach with data (ties broken by the largest ``tie_break``, e.g.
    drainage area). ``down`` holds 0-based downstream indices, -1 = outlet. Vectorised: one array
    step per level of the network. Raises ``ValueError`` naming reaches with no donor at all.
    """
    n = len(down)
    cur = np.arange(n)
    for _ in range(n):
        pending = ~has_data[cur] & (down[cur] >= 0)
        if not pending.any():
            break
        cur[pending] = down[cur[pending]]
    donor = np.where(has_data[cur], cur, -1)
    unresolved = np.flatnonzero(donor < 0)
    if unresolved.size:
        donor[unresolved] = _nearest_upstream(down, has_data, tie_break, unresolved)
    if (donor < 0).any():
        raise ValueError(
            f"no reach with data up- or downstream of indices {np.flatnonzero(donor < 0)}"
        )
    return donor


def aggregate(hru_values: np.ndarray, weights: sp.csr_matrix, donor: np.ndarray) -> np.ndarray:
    """Area-weighted mean over each reach's HRUs, filled from the donor reach.

    ``hru_values`` is (..., n_hru); returns (..., n_reaches) float64.
    """
    values = np.asarray(hru_values, dtype=np.float64)
    flat = values.reshape(-1, values.shape[-1])
    per_reach = np.asarray((weights @ flat.T).T)
    return per_reach[:, donor].reshape(*values.shape[:-1], weights.shape[0])


# --- network -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DRBNetwork:
    """Segment ids, 0-based downstream indices and the HRU -> reach mapping."""

    ids: np.ndarray
    down: np.ndarray
    weights: sp.csr_matrix
    has_hru: np.ndarray
    donor: np.ndarray
    hru_ids: np.ndarray


def build_network(seg: xr.Dataset, channel: xr.Dataset, hrus: pd.DataFrame) -> DRBNetwork:
    """Network arrays from ``tosegment``/``hru_segment`` (1-based indices, 0 = none)."""
    ids = seg["nhm_seg"].to_numpy().astype(np.int64)
    ch_ids = channel["nhm_seg"].to_numpy().astype(np.int64)
    if not np.array_equal(ids, ch_ids):
        raise ValueError("parameters_dis_seg.nc and parameters_PRMSChannel.nc segment ids differ")
    down = seg["tosegment"].to_numpy().astype(np.int64) - 1
    hru_reach = hrus["hru_segment"].to_numpy().astype(np.int64) - 1
    weights = hru_weights(hru_reach, hrus["hru_area"].to_numpy(), len(ids))
    has_hru = np.bincount(hru_reach[hru_reach >= 0], minlength=len(ids)) > 0
    donor = donor_index(down, has_hru, seg["seg_cum_area"].to_numpy())
    return DRBNetwork(ids, down, weights, has_hru, donor, hrus.index.to_numpy())


def _provenance(description: str) -> dict[str, str]:
    return {
        "title": description,
        "source": SOURCE,
        "license": LICENSE,
        "converter": "ddr_pipeline.data.drb (scripts/convert_drb.py)",  # as in the committed data
        "converter_version": CONVERTER_VERSION,
    }


# --- tables --------------------------------------------------------------------------------------
def build_reaches(
    seg: xr.Dataset, channel: xr.Dataset, hrus: pd.DataFrame, net: DRBNetwork
) -> gpd.GeoDataFrame:
    """Reaches table; geometry = approximate Point (mean HRU lon, seg_lat), EPSG:4326."""
    to_id = np.where(net.down >= 0, net.ids[np.maximum(net.down, 0)], 0)
    lon = aggregate(hrus["hru_lon"].to_numpy(), net.weights, net.donor)
    frame = pd.DataFrame(
        {
            "id": net.ids,
            "to_id": to_id.astype(np.int64),
            "length_m": seg["seg_length"].to_numpy().astype(np.float64),
            "slope": seg["seg_slope"].to_numpy().astype(np.float64),
            "x": channel["x_coef"].to_numpy().astype(np.float64),
            "mann_n": channel["mann_n"].to_numpy().astype(np.float64),
            "top_width": seg["seg_width"].to_numpy().astype(np.float64),
            "seg_elev": seg["seg_elev"].to_numpy().astype(np.float64),
            "geometry_approximate": np.ones(len(net.ids), dtype=bool),
        }
    )
    geometry = gpd.points_from_xy(lon, seg["seg_lat"].to_numpy(), crs="EPSG:4326")
    return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")


def build_gauges(seg: xr.Dataset, obs: xr.Dataset, ids: np.ndarray) -> tuple[pd.DataFrame, int]:
    """Gauges table joined by STAID; returns (table sorted by STAID, number dropped)."""
    staid = schema.normalize_staid(pd.Series(seg["poi_gage_id"].to_numpy().astype(str)))
    seg_index = seg["poi_gage_segment"].to_numpy().astype(np.int64)
    valid = (seg_index >= 1) & (seg_index <= len(ids))
    obs_ids = schema.normalize_staid(pd.Series(obs["poi_id"].to_numpy().astype(str)))
    meta = pd.DataFrame(
        {
            "STAID": obs_ids.astype(str).to_numpy(),
            "drain_sqkm": obs["drainage_area"].to_numpy().astype(np.float64) * SQMI_TO_KM2,
            "lat": obs["latitude"].to_numpy().astype(np.float64),
            "lon": obs["longitude"].to_numpy().astype(np.float64),
            "name": obs["poi_name"].to_numpy().astype(str),
        }
    )
    in_obs = staid.isin(meta["STAID"]).to_numpy()
    keep = valid & in_obs
    n_dropped = int((~keep).sum())
    if n_dropped:
        logger.warning(
            "DRB: dropped %d gauges without a segment or without observations: %s",
            n_dropped,
            staid[~keep].tolist(),
        )
    kept = pd.DataFrame(
        {
            "STAID": staid[keep].astype(str).to_numpy(),
            "reach_ids": [[int(ids[i - 1])] for i in seg_index[keep]],
        }
    )
    table = kept.merge(meta, on="STAID", how="left", validate="one_to_one")
    table = table.sort_values("STAID").reset_index(drop=True)
    table["name"] = table["name"].astype(str)
    return table, n_dropped


def build_attributes(
    seg: xr.Dataset, hrus: pd.DataFrame, net: DRBNetwork, forcings: xr.Dataset
) -> pd.DataFrame:
    """Static attributes per reach (float64, raw units; see the README for each column)."""
    cum_km2 = seg["seg_cum_area"].to_numpy().astype(np.float64) * ACRE_TO_KM2
    columns: dict[str, np.ndarray] = {
        "length_m": seg["seg_length"].to_numpy(),
        "slope": seg["seg_slope"].to_numpy(),
        "seg_elev": seg["seg_elev"].to_numpy(),
        "log10_uparea": np.log10(np.maximum(cum_km2, UPAREA_FLOOR_KM2)),
        "hru_area_sqkm": net.weights.sign() @ (hrus["hru_area"].to_numpy() * ACRE_TO_KM2),
    }
    props = np.stack([hrus[v].to_numpy(np.float64) for v in HRU_PROPERTIES])
    columns.update(zip(HRU_PROPERTIES, aggregate(props, net.weights, net.donor), strict=True))
    classes = np.stack(
        [(hrus[v].to_numpy() == c).astype(np.float64) for v, c in HRU_CLASS_FRACTIONS.values()]
    )
    columns.update(
        zip(HRU_CLASS_FRACTIONS, aggregate(classes, net.weights, net.donor), strict=True)
    )
    columns.update(climate_attributes(forcings))
    table = pd.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in columns.items()})
    table.insert(0, "id", net.ids)
    return table[["id", *ATTRIBUTE_COLUMNS]]


def climate_attributes(forcings: xr.Dataset) -> dict[str, np.ndarray]:
    """meanP, meanPET (mm/day), aridity (PET/P) and meanTemp (degC) over 1979 only."""
    period = forcings.sel(time=slice(CLIMATE_START, CLIMATE_END)).astype(np.float64)
    mean_p = period["P"].mean("time").to_numpy()
    mean_pet = period["PET"].mean("time").to_numpy()
    return {
        "meanP": mean_p,
        "meanPET": mean_pet,
        "aridity": mean_pet / mean_p,
        "meanTemp": period["Temp"].mean("time").to_numpy(),
    }


# --- stores --------------------------------------------------------------------------------------
def _time(ds: xr.Dataset) -> np.ndarray:
    return ds["time"].to_numpy().astype("datetime64[D]").astype("datetime64[ns]")


def _segment_store(
    source: Path, fname: str, var: str, *, out_var: str, ids: np.ndarray, title: str
) -> xr.Dataset:
    """A (divide_id, time) m3/s store from a per-segment cfs file, aligned by nhm_seg."""
    ds = open_source(source, fname)
    q = ds[var].sel(nhm_seg=ids).transpose("nhm_seg", "time").to_numpy()
    da = xr.DataArray(
        (q * CFS_TO_M3S).astype(np.float32),
        dims=(schema.DIVIDE_DIM, schema.TIME_DIM),
        coords={schema.DIVIDE_DIM: ids, schema.TIME_DIM: _time(ds)},
        attrs={"units": schema.UNITS[out_var], "source_variable": f"{var} (cfs) x {CFS_TO_M3S}"},
    )
    return xr.Dataset({out_var: da}, attrs=_provenance(title))


def build_lateral_inflow(source: Path, ids: np.ndarray) -> xr.Dataset:
    """``Qr(divide_id, time)`` m3/s from ``seg_lateral_inflow`` (cfs)."""
    return _segment_store(
        source,
        "seg_lateral_inflow.nc",
        "seg_lateral_inflow",
        out_var=schema.LATERAL_INFLOW_VAR,
        ids=ids,
        title="DRB lateral inflow per reach (NHM/PRMS seg_lateral_inflow)",
    )


def build_reference(source: Path, ids: np.ndarray) -> xr.Dataset:
    """``outflow(divide_id, time)`` m3/s: NHM's own routed segment outflow."""
    return _segment_store(
        source,
        "seg_outflow.nc",
        "seg_outflow",
        out_var=schema.REFERENCE_VAR,
        ids=ids,
        title="DRB NHM/PRMS routed segment outflow (reference routing solution)",
    )


def build_observations(obs: xr.Dataset, staids: list[str]) -> xr.Dataset:
    """``streamflow(gage_id, time)`` m3/s for the kept gauges, aligned by STAID."""
    ids = schema.normalize_staid(pd.Series(obs["poi_id"].to_numpy().astype(str)))
    q = obs["discharge"].assign_coords(poi_id=ids.astype(str).to_numpy())
    q = q.sel(poi_id=staids).transpose("poi_id", "time").to_numpy()
    da = xr.DataArray(
        (q.astype(np.float64) * CFS_TO_M3S).astype(np.float32),
        dims=(schema.GAGE_DIM, schema.TIME_DIM),
        coords={schema.GAGE_DIM: np.asarray(staids, dtype=str), schema.TIME_DIM: _time(obs)},
        attrs={"units": schema.UNITS[schema.STREAMFLOW_VAR], "missing": "NaN"},
    )
    return xr.Dataset(
        {schema.STREAMFLOW_VAR: da}, attrs=_provenance("DRB USGS daily mean discharge")
    )


def _hru_forcing(source: Path, var: str, hru_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, n_hru) values aligned by nhm_id, and the time axis."""
    ds = open_source(source, f"{var}.nc")
    values = ds[var].sel(nhm_id=hru_ids.astype(ds["nhm_id"].dtype)).transpose("time", "nhm_id")
    return values.to_numpy().astype(np.float64), _time(ds)


def build_forcings(source: Path, net: DRBNetwork) -> xr.Dataset:
    """P, PET (mm/day) and Temp (degC) per reach: area-weighted HRU means (donor-filled)."""
    prcp, time = _hru_forcing(source, "prcp", net.hru_ids)
    potet, t_pet = _hru_forcing(source, "potet", net.hru_ids)
    tmax, t_max = _hru_forcing(source, "tmax", net.hru_ids)
    tmin, t_min = _hru_forcing(source, "tmin", net.hru_ids)
    for other in (t_pet, t_max, t_min):
        if not np.array_equal(time, other):
            raise ValueError("DRB forcing files have different time axes")
    hru_values = {
        "P": prcp * INCH_TO_MM,
        "PET": potet * INCH_TO_MM,
        "Temp": ((tmax + tmin) / 2.0 - 32.0) * 5.0 / 9.0,
    }
    coords = {schema.DIVIDE_DIM: net.ids, schema.TIME_DIM: time}
    data = {
        name: xr.DataArray(
            aggregate(v, net.weights, net.donor).T.astype(np.float32),
            dims=(schema.DIVIDE_DIM, schema.TIME_DIM),
            coords=coords,
            attrs={"units": schema.UNITS[name]},
        )
        for name, v in hru_values.items()
    }
    return xr.Dataset(data, attrs=_provenance("DRB daily forcings per reach (HRU area-weighted)"))


# --- driver --------------------------------------------------------------------------------------
def well_observed(obs: xr.Dataset, start: str, end: str, fraction: float = 0.9) -> int:
    """Number of gauges with at least ``fraction`` valid days in [start, end]."""
    q = obs[schema.STREAMFLOW_VAR].sel(time=slice(start, end))
    return int((q.notnull().mean(schema.TIME_DIM) >= fraction).sum())


def convert_drb(source: Path, out: Path) -> DRBSummary:
    """Convert the DRB NHM folder ``source`` into the input schema under ``out``."""
    source, out = Path(source), Path(out)
    seg = open_source(source, "parameters_dis_seg.nc")
    channel = open_source(source, "parameters_PRMSChannel.nc")
    obs_src = open_source(source, "drb_2yr_gage_poi_obs.nc")
    hrus = hru_table(source)
    net = build_network(seg, channel, hrus)

    reaches = schema.validate_reaches(build_reaches(seg, channel, hrus, net))
    gauges, n_dropped = build_gauges(seg, obs_src, net.ids)
    gauges = schema.validate_gauges(gauges, net.ids)
    forcings = schema.validate_forcings(build_forcings(source, net), net.ids, schema.FORCING_VARS)
    attributes = schema.validate_attributes(
        build_attributes(seg, hrus, net, forcings), net.ids, ATTRIBUTE_COLUMNS
    )
    lateral, _ = schema.validate_lateral_inflow(
        build_lateral_inflow(source, net.ids), net.ids, None
    )
    observations = schema.validate_observations(
        build_observations(obs_src, gauges["STAID"].tolist()), gauges["STAID"].tolist()
    )
    observations.attrs = _provenance("DRB USGS daily mean discharge")
    reference = build_reference(source, net.ids)

    io.write_reaches(reaches, out / schema.REACHES_FILE)
    io.write_table(gauges, out / schema.GAUGES_FILE)
    io.write_table(attributes, out / schema.ATTRIBUTES_FILE)
    io.write_zarr(lateral, out / schema.LATERAL_INFLOW_STORE)
    io.write_zarr(observations, out / schema.OBSERVATIONS_STORE)
    io.write_zarr(forcings, out / schema.FORCINGS_STORE)
    io.write_zarr(reference, out / schema.REFERENCE_STORE)

    return DRBSummary(
        n_reaches=len(net.ids),
        n_outlets=int((net.down < 0).sum()),
        n_reaches_without_hru=int((~net.has_hru).sum()),
        n_filled_upstream=int(filled_from_upstream(net.down, net.donor).sum()),
        n_gauges=len(gauges),
        n_gauges_dropped=n_dropped,
        n_gauges_well_observed_1980=well_observed(observations, "1980-01-01", "1980-12-31"),
        n_days=int(lateral.sizes[schema.TIME_DIM]),
    )


def filled_from_upstream(down: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """Mask of reaches whose donor is neither themselves nor on their downstream path."""
    cur = np.arange(len(down))
    on_path = donor == cur
    for _ in range(len(down)):
        moving = down[cur] >= 0
        if not moving.any():
            break
        cur = np.where(moving, down[cur], cur)
        on_path |= donor == cur
    return ~on_path
