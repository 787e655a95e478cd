"""Domain routing: daily discharge of every reach (or a target's upstream closure) over a period."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline import __version__, simulation
from ddr_pipeline.config.assimilation import AssimilationConfig
from ddr_pipeline.data.assimilation_obs import write_last_obs
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.distributed.routing import RoutingJob, route_basins_parallel
from ddr_pipeline.inference.assimilation import gauge_assimilation, lead_skill
from ddr_pipeline.inference.gauges import PredictionSettings, route_trained
from ddr_pipeline.inference.periods import RoutedDays, routed_days
from ddr_pipeline.model_store.checkpoints import (
    MODEL_FINGERPRINT_ATTR,
    LoadedCheckpoint,
    model_fingerprint,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Run:
    """One domain routing run: what the output dataset records."""

    ckpt: LoadedCheckpoint
    inputs: ModelInputs
    problem: simulation.RoutingProblem
    days: RoutedDays
    settings: PredictionSettings
    period: tuple[str, str]
    run_name: str
    target_reach_ids: Sequence[int] | None


def route_reaches(  # noqa: PLR0913, PLR0917 (mirrors the node's inputs)
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    period: tuple[str, str],
    settings: PredictionSettings,
    target_reach_ids: Sequence[int] | None,
    run_name: str,
    assimilation: tuple[AssimilationConfig, pd.DataFrame] | None = None,
) -> xr.Dataset:
    """Daily mean ``discharge(reach_id, time)`` (m³/s) of a domain over ``period``.

    The domain is every reach, or the upstream closure of ``target_reach_ids``. Routing starts
    ``settings.warmup_days`` before the period when the inputs allow (spin-up days are dropped).
    With ``settings.nproc_per_node > 1`` its independent basins are routed on that many ranks
    (:mod:`ddr_pipeline.distributed.routing`); the result equals the single-process one up to
    float32 rounding. ``assimilation`` (its configuration and the gauge table), when enabled:
    gauged reaches are nudged toward their observations (:mod:`.assimilation`); the daily mean
    correction per gauge joins the output, with the forecast's skill by lead day when
    ``assimilate_until`` is set, and the last observations go to ``last_obs_out``.
    """
    days = routed_days(inputs, period, settings.warmup_days)
    problem = simulation.reach_problem(inputs, target_reach_ids or None)
    run = _Run(ckpt, inputs, problem, days, settings, period, run_name, target_reach_ids)
    tic = time.perf_counter()
    if assimilation is not None and assimilation[0].enabled:
        if settings.nproc_per_node > 1:
            raise ValueError("routing.assimilation needs nproc_per_node = 1 (one process)")
        return _route_assimilated(run, *assimilation, tic)
    if settings.nproc_per_node > 1:
        job = RoutingJob(
            ckpt, inputs, problem, days.route_from, days.stop, settings.chunk_days, settings.device
        )
        parallel = route_basins_parallel(job, settings.nproc_per_node)
        routed_daily, levels = parallel.daily, parallel.lake_elevation
    else:
        routed = route_trained(ckpt, inputs, problem, days, settings)
        routed_daily, levels = routed.daily, routed.lake_elevation
    return _dataset(run, routed_daily, time.perf_counter() - tic, levels)


def _route_assimilated(
    run: _Run, config: AssimilationConfig, gauges: pd.DataFrame, tic: float
) -> xr.Dataset:
    """:func:`route_reaches` with streamflow nudging."""
    inputs, days = run.inputs, run.days
    settings = simulation.RoutingSettings.from_config(run.ckpt.config)
    da = gauge_assimilation(config, inputs, run.problem, gauges, dt=settings.dt,
                            start_day=days.route_from)  # fmt: skip
    routed = route_trained(run.ckpt, inputs, run.problem, days, run.settings, da.assimilation,
                           da.state)  # fmt: skip
    out = _dataset(run, routed.daily, time.perf_counter() - tic, routed.lake_elevation)
    record = routed.assimilation
    dates = inputs.dates[days.start : days.stop]
    out["assimilation_correction"] = xr.DataArray(
        record.daily_correction[days.keep].T,
        dims=("gage_id", "time"),
        coords={"gage_id": list(da.staids), "time": dates},
        attrs={"units": "m3 s-1", "long_name": "daily mean nudging correction at the gauge"},
    )
    out.attrs.update({
        "assimilation_gain": config.gain, "assimilation_decay_minutes": config.decay_minutes,
        "assimilation_source": config.usgs_timeslices or "model_inputs observations (daily)",
        "assimilate_until": "" if config.assimilate_until is None else config.assimilate_until.isoformat(),
    })  # fmt: skip
    if config.last_obs_out:
        end = inputs.dates[days.stop - 1] + pd.Timedelta(days=1)
        write_last_obs(config.last_obs_out, da.staids, record.state.last_value,
                       record.state.age, end)  # fmt: skip
    if config.assimilate_until is not None:
        local = da.assimilation.reaches
        sim = routed.daily[days.keep][:, local]
        obs = inputs.observations[days.start : days.stop][:, inputs.gauge_columns(da.staids)]
        skill = lead_skill(sim, obs, dates, pd.Timestamp(config.assimilate_until))
        out = out.assign_coords(lead_day=skill["lead_day"].to_numpy())
        for column in ("n_gauges", "median_abs_rel_error", "median_error"):
            out[f"forecast_{column}"] = ("lead_day", skill[column].to_numpy())
    return out


def _dataset(
    run: _Run, routed_daily: np.ndarray, seconds: float, lake_elevation: np.ndarray | None = None
) -> xr.Dataset:
    """The output dataset of a run: daily discharge of the period, the run's attributes and,
    with lakes, their end elevation."""
    inputs, days, problem, period = run.inputs, run.days, run.problem, run.period
    daily = routed_daily[days.keep]
    logger.info(
        "routed %d reaches over %d days (%s .. %s) in %.1f s; Q min/mean/max %.3g/%.3g/%.3g m3/s",
        problem.network.n_reaches,
        daily.shape[0],
        *period,
        seconds,
        float(np.min(daily)),
        float(np.mean(daily)),
        float(np.max(daily)),
    )
    discharge = xr.DataArray(
        daily.T,
        dims=("reach_id", "time"),
        coords={
            "reach_id": inputs.reach_ids[problem.reach_index],
            "time": inputs.dates[days.start : days.stop],
        },
        attrs={"units": "m3 s-1", "long_name": "daily mean discharge at the reach outlet"},
    )
    data = {"discharge": discharge}
    if lake_elevation is not None and problem.lakes is not None:
        data["lake_elevation_end"] = _lake_levels(run, lake_elevation)
    return xr.Dataset(
        data,
        attrs={
            "period": list(period),
            "routing_started": str(inputs.dates[days.route_from].date()),
            "warmup_days": days.warmup_days,
            "chunk_days": int(run.settings.chunk_days),
            "ranks": int(run.settings.nproc_per_node),
            "training_run_name": run.run_name,
            MODEL_FINGERPRINT_ATTR: model_fingerprint(run.ckpt.payload["model_state_dict"]),
            "checkpoint_epoch": int(run.ckpt.epoch),
            "checkpoint_mini_batch": int(run.ckpt.mini_batch),
            "target_reach_ids": [int(r) for r in run.target_reach_ids or []],
            "ddr_pipeline_version": __version__,
        },
    )


def _lake_levels(run: _Run, elevation: np.ndarray) -> xr.DataArray:
    """``lake_elevation_end(lake_reach_id)``: the lakes' water elevation where the routing
    ended (the state a following run would start from)."""
    lakes, problem, days = run.problem.lakes, run.problem, run.days
    assert lakes is not None
    # the rollout also routes the day after the period for a positive output-hour offset
    shift = simulation.RoutingSettings.from_config(run.ckpt.config).shift_steps
    last = days.stop if shift > 0 and days.stop < len(run.inputs.dates) else days.stop - 1
    end = run.inputs.dates[last] + pd.Timedelta(days=1)
    return xr.DataArray(
        np.asarray(elevation, np.float64),
        dims="lake_reach_id",
        coords={
            "lake_reach_id": run.inputs.reach_ids[problem.reach_index[lakes.reach_index]],
            "lake_id": ("lake_reach_id", lakes.lake_ids),
        },
        attrs={
            "units": "m",
            "long_name": "water surface elevation of the level-pool lake at the end of routing",
            "time": end.isoformat(),
        },
    )
