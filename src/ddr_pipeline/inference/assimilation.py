"""Streamflow data assimilation of a routing run: observations and state from the configuration.

:func:`gauge_assimilation` turns an :class:`~ddr_pipeline.config.assimilation.AssimilationConfig`
into the :class:`~ddr_pipeline.simulation.GaugeAssimilation` of a routing problem: the gauges
(given STAIDs, or every gauge of the domain on a single reach), their observations (the daily
series of the model inputs held over their steps, or NWM USGS time slices averaged onto the
routing steps with the quality filter), the hindcast/forecast cut and the last observations of a
``nudgingLastObs`` file. :func:`lead_skill` scores a forecast by lead day.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddr_pipeline import simulation
from ddr_pipeline.config.assimilation import AssimilationConfig
from ddr_pipeline.data.assimilation_obs import (
    daily_per_step,
    per_step,
    read_last_obs,
    read_usgs_timeslices,
)
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.simulation.settings import steps_per_day


@dataclass(frozen=True)
class RunAssimilation:
    """A routing run's assimilation: the observations, the starting state, gauge ids."""

    assimilation: simulation.GaugeAssimilation
    state: simulation.NudgingState | None
    staids: tuple[str, ...]


def _domain_gauges(
    inputs: ModelInputs,
    problem: simulation.RoutingProblem,
    gauges: pd.DataFrame,
    wanted: Sequence[str],
) -> tuple[list[str], np.ndarray]:
    """(STAIDs, local reach index) of the assimilated gauges: ``wanted`` (all must lie in the
    domain on one reach), or every gauge of the domain on a single reach."""
    local = {int(g): k for k, g in enumerate(problem.reach_index)}
    table = gauges.assign(STAID=gauges["STAID"].astype(str))
    if wanted:
        unknown = sorted(set(wanted) - set(table["STAID"]))
        if unknown:
            raise ValueError(f"assimilation.gauges not in the gauge table: {unknown}")
        table = table.set_index("STAID").loc[list(wanted)].reset_index()
    staids, reaches = [], []
    for staid, ids in zip(table["STAID"], table["reach_ids"], strict=True):
        idx = inputs.network.index_of(np.asarray(list(ids), np.int64))
        if len(idx) != 1 or int(idx[0]) not in local:
            if wanted:
                raise ValueError(
                    f"assimilation gauge {staid} is not on one reach of the routed domain"
                )
            continue
        staids.append(staid)
        reaches.append(local[int(idx[0])])
    if not staids:
        raise ValueError("assimilation: no gauge of the table lies on a reach of the routed domain")
    return staids, np.asarray(reaches, np.int64)


def gauge_assimilation(  # noqa: PLR0913 (the run's data and its time grid)
    config: AssimilationConfig, inputs: ModelInputs, problem: simulation.RoutingProblem,
    gauges: pd.DataFrame, *, dt: float, start_day: int,
) -> RunAssimilation:  # fmt: skip
    """The assimilation of a run routing from day position ``start_day`` (its state is read
    from ``config.last_obs_in`` at that day's start)."""
    staids, reaches = _domain_gauges(inputs, problem, gauges, config.gauges)
    spd = steps_per_day(dt)
    if config.usgs_timeslices:
        paths = sorted(glob.glob(config.usgs_timeslices))
        if not paths:
            raise FileNotFoundError(
                f"assimilation.usgs_timeslices matches no file: {config.usgs_timeslices}"
            )
        obs = per_step(read_usgs_timeslices(paths), staids, inputs.dates[0], dt,
                       len(inputs.dates) * spd, min_quality=config.min_quality)  # fmt: skip
        rows, per_row = obs, 1
    else:
        missing = sorted(set(staids) - set(inputs.gage_ids))
        if missing:
            raise ValueError(f"assimilation gauges without a series in the model inputs: {missing}")
        rows, per_row = daily_per_step(inputs.observations[:, inputs.gauge_columns(staids)], 1), spd
    until = None
    if config.assimilate_until is not None:
        offset = pd.Timestamp(config.assimilate_until) - inputs.dates[0]
        until = int(np.ceil(offset.total_seconds() / dt))
    da = simulation.GaugeAssimilation(reaches, rows, per_row, config.gain, config.decay_minutes,
                                      until, tuple(staids))  # fmt: skip
    state = None
    if config.last_obs_in:
        last, age = read_last_obs(config.last_obs_in, staids, inputs.dates[start_day])
        state = simulation.NudgingState(last, age, np.zeros(len(staids)))
    return RunAssimilation(da, state, tuple(staids))


def lead_skill(
    simulated: np.ndarray, observed: np.ndarray, dates: pd.DatetimeIndex, reference: pd.Timestamp
) -> pd.DataFrame:
    """Skill of one forecast by lead day: for each day after ``reference`` (lead 1 = the day
    holding the first step without observations), the number of gauges observed, the median
    absolute relative error |sim − obs| / obs and the median error (m³/s). ``simulated`` and
    ``observed`` are (days, G) daily means on ``dates``."""
    first = int(np.searchsorted(dates, pd.Timestamp(reference).normalize(), side="left"))
    sim, obs = simulated[first:], observed[first:]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(sim - obs) / obs
    valid = np.isfinite(rel) & (obs > 0)
    return pd.DataFrame({
        "lead_day": np.arange(1, sim.shape[0] + 1),
        "date": dates[first:],
        "n_gauges": valid.sum(axis=1),
        "median_abs_rel_error": [np.median(r[v]) if v.any() else np.nan for r, v in zip(rel, valid, strict=True)],
        "median_error": [np.median((s - o)[v]) if v.any() else np.nan
                         for s, o, v in zip(sim, obs, valid, strict=True)],
    })  # fmt: skip
