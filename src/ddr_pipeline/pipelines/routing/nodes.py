"""Nodes of the ``routing`` pipeline: discharge at every reach of a domain for a period.

The domain is every reach of the geodataset or the upstream closure of ``target_reach_ids``.
Routing runs in time chunks carrying the routing and LSTM states
(:func:`ddr_pipeline.inference.route_period`), so the hourly working set is one chunk; the
output holds daily means only.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from ddr_pipeline import __version__, inference, plots
from ddr_pipeline.data.batching import ModelInputs
from ddr_pipeline.training.checkpoints import LoadedCheckpoint

logger = logging.getLogger(__name__)


def _period(params: dict[str, Any], dates: pd.DatetimeIndex) -> tuple[str, str]:
    period = params.get("period") or [dates[0], dates[-1]]
    return str(pd.Timestamp(period[0]).date()), str(pd.Timestamp(period[1]).date())


def route_domain(
    ckpt: LoadedCheckpoint, inputs: ModelInputs, params: dict[str, Any], run_name: str
) -> xr.Dataset:
    """Daily mean ``discharge(reach_id, time)`` (m³/s) of the domain over the period.

    Routing starts ``warmup_days`` before the period when the inputs allow (the spin-up days
    are not part of the output).
    """
    start, end = _period(params, inputs.dates)
    route_from, period_start = inference.spinup_start(inputs.dates, start, params["warmup_days"])
    _, stop = inputs.day_range(start, end)
    domain = inference.reach_domain(inputs, params.get("target_reach_ids") or None)
    source = inference.TrainedParameters(
        ckpt.model, ckpt.config, inputs.attribute_names, inputs.forcing_names
    )
    settings = inference.RouteSettings(chunk_days=params["chunk_days"], device=params["device"])
    tic = time.perf_counter()
    routed = inference.route_period(inputs, domain, source, route_from, stop, settings=settings)
    seconds = time.perf_counter() - tic
    daily = routed.daily[period_start - route_from :]
    logger.info(
        "routed %d reaches over %d days (%s .. %s) in %.1f s; Q min/mean/max %.3g/%.3g/%.3g m3/s",
        domain.network.n_reaches,
        daily.shape[0],
        start,
        end,
        seconds,
        float(np.min(daily)),
        float(np.mean(daily)),
        float(np.max(daily)),
    )
    discharge = xr.DataArray(
        daily.T,
        dims=("reach_id", "time"),
        coords={
            "reach_id": inputs.reach_ids[domain.reach_index],
            "time": inputs.dates[period_start:stop],
        },
        attrs={"units": "m3 s-1", "long_name": "daily mean discharge at the reach outlet"},
    )
    return xr.Dataset(
        {"discharge": discharge},
        attrs={
            "period": [start, end],
            "routing_started": str(inputs.dates[route_from].date()),
            "warmup_days": int(params["warmup_days"]),
            "chunk_days": int(params["chunk_days"]),
            "training_run_name": run_name,
            "checkpoint_epoch": int(ckpt.epoch),
            "checkpoint_mini_batch": int(ckpt.mini_batch),
            "target_reach_ids": [int(r) for r in params.get("target_reach_ids") or []],
            "ddr_pipeline_version": __version__,
        },
    )


def summary_figure(routed: xr.Dataset, reach_ids: list[int]) -> Figure:
    """Hydrographs of the chosen reaches (default: largest mean flow) and the flow distribution."""
    return plots.plot_routing_summary(routed["discharge"], [int(r) for r in reach_ids])
