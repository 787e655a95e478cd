"""Assemble the model-ready ``xr.Dataset`` (architecture.md §4) from validated inputs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline.data.normalization import zscore
from ddr_pipeline.data.schema import (
    DIVIDE_DIM,
    GAGE_DIM,
    LAKE_FLOAT_COLS,
    LAKE_ID_COL,
    LAKE_OPTIONAL_PARAMS,
    LAKE_REACH_COL,
    LATERAL_INFLOW_VAR,
    REACH_OPTIONAL_FLOAT,
    STREAMFLOW_VAR,
    TIME_DIM,
    UNITS,
    format_values,
)

logger = logging.getLogger(__name__)

REACH_DIM = "reach_id"
ATTRIBUTE_DIM = "attribute"
FORCING_DIM = "forcing"
LAKE_DIM = LAKE_ID_COL
CHANNEL_REQUIRED: tuple[str, ...] = ("length_m", "slope", "x")


def channel_variables(reaches: pd.DataFrame) -> dict[str, xr.DataArray]:
    """``to_id`` and channel columns of the reaches table as ``(reach_id,)`` variables.

    Optional columns are kept only when at least one value is observed.
    """
    ids = reaches["id"].to_numpy(dtype=np.int64)
    out = {"to_id": xr.DataArray(reaches["to_id"].to_numpy(dtype=np.int64), dims=REACH_DIM)}
    optional = [c for c in REACH_OPTIONAL_FLOAT if c in reaches and reaches[c].notna().any()]
    for col in (*CHANNEL_REQUIRED, *optional):
        values = reaches[col].to_numpy(dtype=np.float64)
        out[col] = xr.DataArray(values, dims=REACH_DIM, attrs={"units": UNITS[col]})
    return {k: v.assign_coords({REACH_DIM: ids}) for k, v in out.items()}


def attribute_variables(
    attributes: pd.DataFrame, names: Sequence[str], stats: Mapping[str, Mapping[str, float]]
) -> dict[str, xr.DataArray]:
    """Raw and z-scored ``(reach_id, attribute)`` arrays; NaN becomes 0 (the mean) once scaled."""
    raw = attributes[list(names)].to_numpy(dtype=np.float64)
    scaled = zscore(raw, stats, names)
    n_nan = int(np.isnan(scaled).sum())
    if n_nan:
        logger.info("model inputs: %d missing attribute values filled with the mean", n_nan)
    coords = {REACH_DIM: attributes["id"].to_numpy(dtype=np.int64), ATTRIBUTE_DIM: list(names)}
    dims = (REACH_DIM, ATTRIBUTE_DIM)
    return {
        "attributes": xr.DataArray(
            np.nan_to_num(scaled, nan=0.0).astype(np.float32),
            dims=dims,
            coords=coords,
            attrs={"description": "z-scored static attributes (training-reach statistics)"},
        ),
        "attributes_raw": xr.DataArray(
            raw.astype(np.float32),
            dims=dims,
            coords=coords,
            attrs={"description": "raw static attributes"},
        ),
    }


def forcing_variable(
    forcings: xr.Dataset,
    names: Sequence[str],
    stats: Mapping[str, Mapping[str, float]],
    dates: pd.DatetimeIndex,
    reach_dim: str = DIVIDE_DIM,
) -> xr.DataArray:
    """Z-scored ``(time, reach_id, forcing)`` array over ``dates`` (an empty ``forcing`` axis
    when ``names`` is empty: no LSTM)."""
    if not names:
        reach_ids = forcings[reach_dim].to_numpy()
        return xr.DataArray(
            np.zeros((len(dates), reach_ids.size, 0), np.float32),
            dims=(TIME_DIM, REACH_DIM, FORCING_DIM),
            coords={TIME_DIM: dates, REACH_DIM: reach_ids, FORCING_DIM: np.array([], str)},
            attrs={"description": "no forcings (no LSTM)", "units": "1"},
        )
    stacked = xr.concat([forcings[n] for n in names], dim=FORCING_DIM)
    stacked = stacked.sel({TIME_DIM: dates}).transpose(TIME_DIM, reach_dim, FORCING_DIM)
    scaled = zscore(stacked.to_numpy(), stats, names).astype(np.float32)
    return xr.DataArray(
        scaled,
        dims=(TIME_DIM, REACH_DIM, FORCING_DIM),
        coords={
            TIME_DIM: dates,
            REACH_DIM: stacked[reach_dim].to_numpy(),
            FORCING_DIM: list(names),
        },
        attrs={
            "description": "z-scored daily forcings (training period/reach statistics)",
            "units": "1",
        },
    )


def lateral_inflow_variable(
    lateral_inflow: xr.Dataset,
    dates: pd.DatetimeIndex,
    variable: str = LATERAL_INFLOW_VAR,
    reach_dim: str = DIVIDE_DIM,
) -> xr.DataArray:
    """Daily lateral inflow as ``(time, reach_id)`` float32 over ``dates``."""
    qr = lateral_inflow[variable].sel({TIME_DIM: dates}).transpose(TIME_DIM, reach_dim)
    return xr.DataArray(
        qr.to_numpy().astype(np.float32),
        dims=(TIME_DIM, REACH_DIM),
        coords={TIME_DIM: dates, REACH_DIM: qr[reach_dim].to_numpy()},
        attrs={"units": UNITS[LATERAL_INFLOW_VAR], "description": "daily lateral inflow Q'"},
    )


def observation_variable(
    observations: xr.Dataset,
    gauge_ids: Sequence[str],
    dates: pd.DatetimeIndex,
    variable: str = STREAMFLOW_VAR,
) -> xr.DataArray:
    """Daily observed discharge as ``(time, gage_id)``; days without data are NaN."""
    q = observations[variable].reindex({TIME_DIM: dates}).sel({GAGE_DIM: list(gauge_ids)})
    q = q.transpose(TIME_DIM, GAGE_DIM)
    gage = np.asarray([str(g) for g in gauge_ids], dtype=f"<U{max(map(len, gauge_ids), default=1)}")
    return xr.DataArray(
        q.to_numpy().astype(np.float32),
        dims=(TIME_DIM, GAGE_DIM),
        coords={TIME_DIM: dates, GAGE_DIM: gage},
        attrs={
            "units": UNITS[STREAMFLOW_VAR],
            "description": "daily mean observed discharge, NaN = missing",
        },
    )


def lake_variables(lakes: pd.DataFrame | None) -> dict[str, xr.DataArray]:
    """The validated lakes as ``lake_<column>`` variables over ``lake`` (coordinate ``lake_id``):
    the reach each lake routes at (``lake_reach_id``), its level-pool parameters (an optional one
    absent: its default, ``schema.LAKE_OPTIONAL_PARAMS``) and initial elevation; nothing
    without lakes."""
    if lakes is None or lakes.empty:
        return {}
    coords = {LAKE_DIM: lakes[LAKE_ID_COL].to_numpy(dtype=np.int64)}
    reach = lakes[LAKE_REACH_COL].to_numpy(dtype=np.int64)
    out = {f"lake_{LAKE_REACH_COL}": xr.DataArray(reach, dims=LAKE_DIM, coords=coords)}
    for column in LAKE_FLOAT_COLS:
        if column not in lakes and column in LAKE_OPTIONAL_PARAMS:  # a table not validated
            values = np.full(len(lakes), LAKE_OPTIONAL_PARAMS[column], np.float64)
        else:
            values = lakes[column].to_numpy(dtype=np.float64)
        out[f"lake_{column}"] = xr.DataArray(values, dims=LAKE_DIM, coords=coords)
    return out


def build_model_inputs(  # noqa: PLR0913
    *,
    reaches: pd.DataFrame,
    attributes: pd.DataFrame,
    lateral_inflow: xr.Dataset,
    forcings: xr.Dataset,
    observations: xr.Dataset,
    stats: Mapping[str, Any],
    dates: pd.DatetimeIndex,
    attribute_names: Sequence[str],
    forcing_names: Sequence[str],
    attrs: Mapping[str, Any] | None = None,
    lakes: pd.DataFrame | None = None,
) -> xr.Dataset:
    """Build the model-ready dataset, every per-reach array aligned on the reaches' ``id`` order.

    All inputs must already be validated and ordered like ``reaches["id"]`` (gauges: like
    ``observations``); ``stats`` is the normalisation statistics document. ``lakes``: the
    validated lakes table (None or empty: no lakes), stored over a ``lake`` dimension.
    """
    reach_ids = reaches["id"].to_numpy(dtype=np.int64)
    _require_same_ids(attributes["id"].to_numpy(dtype=np.int64), reach_ids, "attributes")
    _require_same_ids(lateral_inflow[DIVIDE_DIM].to_numpy(), reach_ids, "lateral_inflow")
    _require_same_ids(forcings[DIVIDE_DIM].to_numpy(), reach_ids, "forcings")
    gauge_ids = [str(g) for g in observations[GAGE_DIM].to_numpy()]
    variables = {
        **channel_variables(reaches),
        **attribute_variables(attributes, attribute_names, stats["attributes"]),
        "lateral_inflow": lateral_inflow_variable(lateral_inflow, dates),
        "forcings": forcing_variable(forcings, forcing_names, stats["forcings"], dates),
        "observations": observation_variable(observations, gauge_ids, dates),
        **lake_variables(lakes),
    }
    ds = xr.Dataset(variables, attrs=dict(attrs or {}))
    logger.info(
        "model inputs: %d reaches, %d gauges, %d days (%s .. %s)",
        ds.sizes[REACH_DIM],
        ds.sizes[GAGE_DIM],
        ds.sizes[TIME_DIM],
        dates[0].date(),
        dates[-1].date(),
    )
    return ds


def _require_same_ids(have: np.ndarray, want: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming the first misaligned ids unless ``have`` equals ``want``."""
    have = have.astype(np.int64)
    if have.shape == want.shape and np.array_equal(have, want):
        return
    if have.shape != want.shape:
        detail = f"{have.size} ids, reaches have {want.size}"
    else:
        where = np.flatnonzero(have != want)
        detail = (
            f"ids {format_values(have[where])} where the reaches have {format_values(want[where])}"
        )
    raise ValueError(f"model inputs: {name} is not aligned with the reaches' id order ({detail})")
