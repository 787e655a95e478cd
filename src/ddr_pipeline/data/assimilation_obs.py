"""Observations for streamflow data assimilation, and the last-observation files.

* NWM's USGS time slices (``YYYY-MM-DD_HH:MM:SS.15min.usgsTimeSlice.ncdf``: one file per
  15-minute slice; per station ``stationId``, ``time``, ``discharge`` in m³/s and
  ``discharge_quality`` 0–100) are read by :func:`read_usgs_timeslices` and averaged onto the
  routing steps by :func:`per_step`, after the quality filter.
* Daily gauge series (``model_inputs`` observations) are held over the steps of their day
  (:func:`daily_per_step`).
* The last-observation state per gauge is written and read like t-route's
  ``nudgingLastObs.YYYY-MM-DD_HH:MM:SS.nc`` (``stationId``, ``time`` and ``discharge`` of the last
  valid observation, attribute ``modelTimeAtOutput``): :func:`write_last_obs`,
  :func:`read_last_obs`.

Plain arrays only (the engine's types live in ``routing.nudging``); docs/data_assimilation.md.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

logger = logging.getLogger(__name__)

_TIME_FORMAT = "%Y-%m-%d_%H:%M:%S"


@dataclass(frozen=True)
class TimeSlices:
    """Observation records of a set of time slices: (K,) station id, time, discharge, quality."""

    station: np.ndarray  # str, stripped
    time: np.ndarray  # datetime64[ns]
    discharge: np.ndarray  # float64, m3/s (NaN: fill value)
    quality: np.ndarray  # float64, 0-100


def _decode(values: np.ndarray) -> np.ndarray:
    return np.char.strip(np.char.decode(np.asarray(values, dtype=bytes), "ascii"))


def _parse_times(values: np.ndarray, source: object) -> np.ndarray:
    try:
        return pd.to_datetime(values, format=_TIME_FORMAT).to_numpy("datetime64[ns]")
    except ValueError as error:
        raise ValueError(f"{source}: time not in YYYY-MM-DD_HH:MM:SS form ({error})") from None


def read_usgs_timeslices(paths: Iterable[str | Path]) -> TimeSlices:
    """All records of the ``usgsTimeSlice`` netCDF files ``paths`` (any order)."""
    parts: list[tuple[np.ndarray, ...]] = []
    for path in paths:
        with xr.open_dataset(path, mask_and_scale=True, decode_times=False) as ds:
            missing = {"stationId", "time", "discharge", "discharge_quality"} - set(ds.variables)
            if missing:
                raise ValueError(f"{path}: not a USGS time slice, lacks {sorted(missing)}")
            parts.append((
                _decode(ds["stationId"].values),
                _parse_times(_decode(ds["time"].values), path),
                ds["discharge"].values.astype(np.float64),
                ds["discharge_quality"].values.astype(np.float64),
            ))  # fmt: skip
    if not parts:
        raise ValueError("no USGS time slice files given")
    return TimeSlices(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


def per_step(
    slices: TimeSlices, stations: Sequence[str], start: pd.Timestamp, dt: float, n_steps: int,
    *, min_quality: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """(n_steps, G) mean of the valid observations of each station in each routing step:
    step t covers (start + t·dt, start + (t+1)·dt] (its end state is what gets nudged). Rejected
    (NaN): non-finite or negative discharge and quality below ``min_quality`` (t-route's
    ``qc_threshold``); NaN where a step has no valid record."""
    column = {s: g for g, s in enumerate(stations)}
    g = np.array([column.get(s, -1) for s in slices.station], np.int64)
    offset = (slices.time - np.datetime64(pd.Timestamp(start).tz_localize(None), "ns")).astype(
        "timedelta64[ns]"
    ).astype(np.float64) / 1e9  # fmt: skip
    t = np.ceil(offset / dt).astype(np.int64) - 1
    v = slices.discharge
    keep = (g >= 0) & (t >= 0) & (t < n_steps) & np.isfinite(v) & (v >= 0)
    keep &= slices.quality >= min_quality
    flat = t[keep] * len(stations) + g[keep]
    size = n_steps * len(stations)
    total = np.bincount(flat, weights=v[keep], minlength=size)
    count = np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    return out.reshape(n_steps, len(stations))


def daily_per_step(daily: np.ndarray, steps_per_day: int) -> np.ndarray:
    """(D·steps_per_day, G): each day's mean held over the routing steps of that day."""
    return np.repeat(np.asarray(daily, np.float64), steps_per_day, axis=0)


def write_last_obs(
    path: str | Path, stations: Sequence[str], last_value: np.ndarray, age_seconds: np.ndarray,
    model_time: pd.Timestamp,
) -> Path:  # fmt: skip
    """Write t-route's ``nudgingLastObs`` file (atomically): per station the last valid
    observation and its time (``model_time`` − age; stations never observed are written with
    NaN discharge and the model time)."""
    model_time = pd.Timestamp(model_time)
    seen = ~np.isnan(last_value)
    times = [
        (model_time - pd.Timedelta(seconds=float(a)) if s else model_time).strftime(_TIME_FORMAT)
        for a, s in zip(age_seconds, seen, strict=True)
    ]
    ds = xr.Dataset(
        {
            "stationId": ("stationIdInd", np.array([s.rjust(15) for s in stations], dtype="S15")),
            "time": (("stationIdInd", "timeInd"), np.array(times, dtype="S19")[:, None]),
            "discharge": (
                ("stationIdInd", "timeInd"),
                np.asarray(last_value, np.float32)[:, None],
                {"units": "m^3/s", "long_name": "last valid observed discharge"},
            ),
        },
        attrs={"modelTimeAtOutput": model_time.strftime(_TIME_FORMAT)},
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".nc.tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def read_last_obs(
    path: str | Path, stations: Sequence[str], model_time: pd.Timestamp | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(last_value, age in s) per station of ``stations`` from a ``nudgingLastObs`` file (ours
    or t-route's), at ``model_time`` (default: the file's ``modelTimeAtOutput``); NaN for
    stations the file lacks or never observed, or whose last observation is after
    ``model_time`` (logged)."""
    with xr.open_dataset(path, mask_and_scale=True, decode_times=False) as ds:
        ids = _decode(ds["stationId"].values)
        times = _parse_times(_decode(np.asarray(ds["time"].values)[:, -1]), path)
        values = np.asarray(ds["discharge"].values, np.float64)[:, -1]
        at = pd.Timestamp(model_time if model_time is not None else
                          pd.to_datetime(ds.attrs["modelTimeAtOutput"], format=_TIME_FORMAT))  # fmt: skip
    age = (np.datetime64(at.tz_localize(None), "ns") - times).astype("timedelta64[s]").astype(float)
    values[~np.isfinite(values) | (values < 0)] = np.nan
    late = np.flatnonzero(~np.isnan(values) & (age < 0))
    if late.size:  # t-route's own test file has one: unusable as a last observation
        logger.warning(
            "%s: last observations after the model time %s ignored for stations %s",
            path, at, ids[late][:10].tolist(),
        )  # fmt: skip
        values[late] = np.nan
    row = {s: k for k, s in enumerate(ids)}
    pick = np.array([row.get(s, -1) for s in stations], np.int64)
    last = np.where(pick >= 0, values[pick], np.nan)
    age_out = np.where(np.isnan(last), np.nan, age[pick])
    return last, age_out
