"""Lateral-inflow sources: one small protocol for every Q' product a converter may read.

A source reads the lateral inflow of a domain's reaches and returns the schema's daily
``Qr(divide_id, time)`` in m3/s (docs/data_formats.md). Implementations:

* :class:`StoreInflow`: one variable of a zarr / Icechunk / netCDF store (``Qr`` of DDR's
  stores), in m3/s, ft3/s, or a depth (mm/day, in/day) converted with unit-catchment areas;
* :class:`NwmInflow`: the National Water Model's channel output (CHRTOUT-style
  ``qSfcLatRunoff + qBucket`` by ``feature_id``, m3/s), the lateral inflow NWM routes.

Rows may be daily (at 00:00) or sub-daily at a regular step (e.g. hourly): sub-daily rows are
averaged into calendar-day means (a row stamped ``t`` counts for the day of ``t``, or of
``t - step`` with ``stamp="end"``); the step must be regular (a missing row fails naming the
steps found) and incomplete days at either end of the store are dropped (logged). The schema,
and so the model inputs, are daily: routing repeats each day's mean over its 24 hourly steps
(routing hourly Q' rows one step per row is not implemented).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline.data import schema
from ddr_pipeline.ingest import stores

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400
NWM_VARIABLES = ("qSfcLatRunoff", "qBucket")


class LateralInflowSource(Protocol):
    """Anything that yields the schema's daily ``Qr`` for a domain."""

    location: str

    def read(
        self, reach_ids: Sequence[int] | np.ndarray, period: tuple[str, str] | None = None
    ) -> xr.Dataset:
        """Daily ``Qr(divide_id, time)`` (float32, m3/s) for ``reach_ids`` over ``period``."""
        ...


def _step_seconds(times: np.ndarray, name: str, store: str) -> int:
    """The regular time step of ``times`` in seconds; StoreError when irregular."""
    if times.size < 2:
        return SECONDS_PER_DAY
    steps = np.unique(np.diff(times.astype("datetime64[s]")).astype(np.int64))
    if steps.size != 1 or steps[0] <= 0 or SECONDS_PER_DAY % int(steps[0]):
        raise stores.StoreError(
            f"{store}: {name!r} has time steps of {schema.format_values(steps.tolist())} s; "
            "expected one regular step dividing a day (e.g. 3600 or 86400)"
        )
    return int(steps[0])


def daily_means(
    da: xr.DataArray, store: str, *, stamp: Literal["start", "end"] = "start"
) -> xr.DataArray:
    """``da`` (dims ``(..., time)``) as calendar-day means; daily rows at 00:00 pass unchanged.

    Incomplete days (only possible at the ends, the step being regular) are dropped (logged).

    Raises:
        StoreError: irregular steps (a missing row), named with the steps found.
    """
    times = da[schema.TIME_DIM].to_numpy()
    step = _step_seconds(times, str(da.name), store)
    if step == SECONDS_PER_DAY and stamp == "start":
        return da
    shift = np.timedelta64(step if stamp == "end" else 0, "s")
    days = (times.astype("datetime64[s]") - shift).astype("datetime64[D]")
    unique, counts = np.unique(days, return_counts=True)
    short = unique[counts != SECONDS_PER_DAY // step]  # with a regular step: edge days only
    if short.size:
        logger.info("%s: dropping incomplete edge day(s) %s", store, short.astype(str).tolist())
    keep = ~np.isin(days, short)
    grouped = da.isel({schema.TIME_DIM: keep}).assign_coords(
        {schema.TIME_DIM: days[keep].astype("datetime64[ns]")}
    )
    out = grouped.groupby(schema.TIME_DIM).mean()
    out.attrs = dict(da.attrs)
    return out.rename(da.name)


def _variable(
    ds: xr.Dataset, name: str, location: str, kind: str = "variable", note: str = ""
) -> xr.DataArray:
    """``ds[name]``; ``StoreError`` naming the store and the variables it has."""
    if name not in ds.data_vars:
        raise stores.StoreError(
            f"{location}: no {kind} {name!r}{note}; variables: {', '.join(map(str, ds.data_vars))}"
        )
    return ds[name]


def _schema_qr(
    source: StoreInflow | NwmInflow,
    daily: xr.DataArray,
    reach_ids: Sequence[int] | np.ndarray,
    period: tuple[str, str] | None,
    area_km2: pd.Series | None = None,
) -> xr.Dataset:
    """Schema ``Qr`` of a source's daily values for ``reach_ids`` (its id, missing and map rules)."""
    return stores.read_lateral_inflow(
        daily.rename(schema.LATERAL_INFLOW_VAR).to_dataset(),
        reach_ids,
        period=period,
        id_dim=source.id_dim,
        missing=source.missing,
        divide_to_reach=source.divide_to_reach,
        area_km2=area_km2,
        store=source.location,
    )


@dataclass(frozen=True)
class StoreInflow:
    """``variable`` of a zarr / Icechunk / netCDF store as lateral inflow.

    ``area_km2`` (reach id -> km2) converts a depth (mm/day) to m3/s; ``missing`` says what to do
    with reaches the store lacks (default: fill 0.001 m3/s like DDR, reported).
    """

    location: str
    variable: str = schema.LATERAL_INFLOW_VAR
    id_dim: str = schema.DIVIDE_DIM
    area_km2: pd.Series | None = None
    missing: stores.MissingRule = field(default_factory=stores.MissingRule)
    divide_to_reach: pd.Series | None = None
    stamp: Literal["start", "end"] = "start"
    region: str = stores.DEFAULT_REGION

    def read(
        self, reach_ids: Sequence[int] | np.ndarray, period: tuple[str, str] | None = None
    ) -> xr.Dataset:
        """Daily ``Qr`` for ``reach_ids`` (see the module docstring for sub-daily rows)."""
        ds = stores.open_store(self.location, region=self.region)
        daily = daily_means(
            _variable(ds, self.variable, self.location), self.location, stamp=self.stamp
        )
        return _schema_qr(self, daily, reach_ids, period, self.area_km2)


@dataclass(frozen=True)
class NwmInflow:
    """NWM channel output: lateral inflow = ``qSfcLatRunoff + qBucket`` (m3/s) by ``feature_id``.

    ``feature_id`` is the NWM reach (NHDPlus COMID); ``divide_to_reach`` maps it to the domain's
    reach ids when they differ. NWM stamps are the valid time of each output: ``stamp="end"``
    counts the value at 01:00 .. 24:00 for the day that ends at 24:00.
    """

    location: str
    variables: tuple[str, ...] = NWM_VARIABLES
    id_dim: str = "feature_id"
    missing: stores.MissingRule = field(default_factory=lambda: stores.MissingRule("error"))
    divide_to_reach: pd.Series | None = None
    stamp: Literal["start", "end"] = "end"
    region: str = stores.DEFAULT_REGION

    def read(
        self, reach_ids: Sequence[int] | np.ndarray, period: tuple[str, str] | None = None
    ) -> xr.Dataset:
        """Daily ``Qr`` = the day's mean of ``qSfcLatRunoff + qBucket`` for ``reach_ids``."""
        ds = stores.open_store(self.location, region=self.region)
        total = None
        for name in self.variables:
            note = f" (lateral inflow = {' + '.join(self.variables)})"
            da = _variable(ds, name, self.location, "NWM variable", note)
            scale, offset = stores.unit_conversion(da, "m3 s-1", self.location)
            part = da * scale + offset
            total = part if total is None else total + part
        total = total.rename(schema.LATERAL_INFLOW_VAR)
        total.attrs = {"units": "m3 s-1"}
        daily = daily_means(total, self.location, stamp=self.stamp)
        return _schema_qr(self, daily, reach_ids, period)
