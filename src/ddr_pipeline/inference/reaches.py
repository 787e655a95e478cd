"""Domain routing: daily discharge of every reach (or a target's upstream closure) over a period."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import xarray as xr

from ddr_pipeline import __version__, simulation
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.distributed.routing import RoutingJob, route_basins_parallel
from ddr_pipeline.inference.gauges import PredictionSettings, route_trained
from ddr_pipeline.inference.periods import routed_days
from ddr_pipeline.model_store.checkpoints import LoadedCheckpoint

logger = logging.getLogger(__name__)


def route_reaches(  # noqa: PLR0917 (mirrors the node's inputs)
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    period: tuple[str, str],
    settings: PredictionSettings,
    target_reach_ids: Sequence[int] | None,
    run_name: str,
) -> xr.Dataset:
    """Daily mean ``discharge(reach_id, time)`` (m³/s) of a domain over ``period``.

    The domain is every reach, or the upstream closure of ``target_reach_ids``. Routing starts
    ``settings.warmup_days`` before the period when the inputs allow (spin-up days are dropped).
    With ``settings.nproc_per_node > 1`` its independent basins are routed on that many ranks
    (:mod:`ddr_pipeline.distributed.routing`); the result equals the single-process one up to
    float32 rounding.
    """
    days = routed_days(inputs, period, settings.warmup_days)
    problem = simulation.reach_problem(inputs, target_reach_ids or None)
    tic = time.perf_counter()
    if settings.nproc_per_node > 1:
        job = RoutingJob(
            ckpt, inputs, problem, days.route_from, days.stop, settings.chunk_days, settings.device
        )
        routed_daily = route_basins_parallel(job, settings.nproc_per_node)
    else:
        routed_daily = route_trained(ckpt, inputs, problem, days, settings).daily
    seconds = time.perf_counter() - tic
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
    return xr.Dataset(
        {"discharge": discharge},
        attrs={
            "period": list(period),
            "routing_started": str(inputs.dates[days.route_from].date()),
            "warmup_days": days.warmup_days,
            "chunk_days": int(settings.chunk_days),
            "ranks": int(settings.nproc_per_node),
            "training_run_name": run_name,
            "checkpoint_epoch": int(ckpt.epoch),
            "checkpoint_mini_batch": int(ckpt.mini_batch),
            "target_reach_ids": [int(r) for r in target_reach_ids or []],
            "ddr_pipeline_version": __version__,
        },
    )
