"""Nodes of the ``routing`` pipeline: discharge at every reach of a domain for a period.

The domain is every reach of the geodataset or the upstream closure of ``target_reach_ids``.
Routing runs in time chunks carrying the routing and LSTM states
(:func:`ddr_pipeline.inference.reaches.route_reaches`), so the hourly working set is one chunk; the
output holds daily means only.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from ddr_pipeline.config.pipelines import RoutingConfig
from ddr_pipeline.config.training import validate_section
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.evaluation import plots
from ddr_pipeline.inference.gauges import PredictionSettings
from ddr_pipeline.inference.periods import routing_period
from ddr_pipeline.inference.reaches import route_reaches
from ddr_pipeline.model_store.checkpoints import LoadedCheckpoint


def route_domain(
    ckpt: LoadedCheckpoint, inputs: ModelInputs, params: dict[str, Any], run_name: str,
    gauges: pd.DataFrame | None = None,
) -> xr.Dataset:  # fmt: skip
    """Daily mean ``discharge(reach_id, time)`` (m³/s) of the domain over the period.

    Routing starts ``warmup_days`` before the period when the inputs allow (the spin-up days
    are not part of the output). With ``assimilation.enabled`` the gauges of ``gauges`` (the
    data_processing gauge table) are nudged toward their observations
    (docs/data_assimilation.md).
    """
    config = validate_section(RoutingConfig, params, "routing")
    period = routing_period(config.period, inputs.dates)
    settings = PredictionSettings(
        warmup_days=config.warmup_days,
        chunk_days=config.chunk_days,
        device=config.device,
        nproc_per_node=config.nproc_per_node,
    )
    if config.assimilation.enabled and gauges is None:
        raise ValueError("routing.assimilation needs the gauge table (<geodataset>.model_gauges)")
    da = None if gauges is None else (config.assimilation, gauges)
    return route_reaches(ckpt, inputs, period, settings, config.target_reach_ids, run_name, da)


def summary_figure(routed: xr.Dataset, reach_ids: list[int]) -> Figure:
    """Hydrographs of the chosen reaches (default: largest mean flow) and the flow distribution."""
    return plots.plot_routing_summary(routed["discharge"], [int(r) for r in reach_ids])
