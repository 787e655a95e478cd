"""The evaluation output dataset: the model and its baselines at every gauge over a period."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline import __version__, simulation
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.data.schema import STREAMFLOW_VAR, UNITS
from ddr_pipeline.evaluation import baselines
from ddr_pipeline.evaluation.report import REFERENCE, SUMMED, UNTRAINED, observation_report
from ddr_pipeline.inference.gauges import (
    PredictionSettings,
    gauge_array,
    known_gauges,
    route_trained,
    run_rollout,
)
from ddr_pipeline.inference.periods import routed_days
from ddr_pipeline.model_store.checkpoints import LoadedCheckpoint

logger = logging.getLogger(__name__)


def baseline_predictions(
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    gauge_set: GaugeSet,
    problem: simulation.RoutingProblem,
    settings: PredictionSettings,
    *,
    days: slice,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, (days, gauges) daily values)`` of every enabled baseline."""
    cfg = settings.baselines
    if cfg.summed_lateral_inflow:
        yield (
            SUMMED,
            baselines.summed_lateral_inflow(
                inputs.lateral_inflow[days],
                inputs.network,
                gauge_set.reach_index,
                gauge_set.flow_scale,
            ),
        )
    if cfg.untrained.enabled:
        source = simulation.ConstantParameters(
            ckpt.config, cfg.untrained.values, inputs.attribute_names
        )
        logger.info("untrained baseline parameters: %s", source.values)
        routed = run_rollout(ckpt, inputs, problem, source, days, settings)
        yield UNTRAINED, routed.daily
    product = baselines.load_reference(cfg.reference.path, cfg.reference.variable)
    if product is not None:
        reach_ids = [inputs.reach_ids[idx] for idx in gauge_set.reach_index]
        yield REFERENCE, baselines.reference_at_gauges(product, reach_ids, inputs.dates[days])


def predict_period(  # noqa: PLR0917 (mirrors the node's inputs)
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    gauges: pd.DataFrame,
    period: tuple[str, str],
    settings: PredictionSettings,
    run_name: str,
) -> xr.Dataset:
    """Route ``period`` (after the warm-up) at all gauges: the ``model_test`` dataset.

    Variables ``predictions``, ``observations`` and one ``baseline_<name>`` per baseline, dims
    ``(gage_id, time)``, m³/s; attrs: period, scored period, checkpoint, warm-up, gauges and days
    without observations.
    """
    days = routed_days(inputs, period, settings.warmup_days)
    gauge_set = known_gauges(inputs, gauges)
    problem = simulation.gauge_problem(inputs, gauge_set.reach_index, gauge_set.flow_scale)
    routed = route_trained(ckpt, inputs, problem, days, settings)
    dates = inputs.dates[days.start : days.stop]
    units = UNITS[STREAMFLOW_VAR]
    observed = inputs.observations[days.start : days.stop][:, gauge_set.obs_column]
    data = {
        "predictions": gauge_array(routed.daily[days.keep], gauge_set.staids, dates, units),
        "observations": gauge_array(observed, gauge_set.staids, dates, units),
    }
    for name, values in baseline_predictions(
        ckpt, inputs, gauge_set, problem, settings, days=days.days
    ):
        data[f"baseline_{name}"] = gauge_array(values[days.keep], gauge_set.staids, dates, units)
    scored_from = dates[min(max(days.shortfall, 0), len(dates) - 1)]
    ds = xr.Dataset(data)
    ds.attrs.update(
        {
            "units": units,
            "period": list(period),
            "scored_from": str(scored_from.date()),
            "warmup_days": days.warmup_days,
            "routing_started": str(inputs.dates[days.route_from].date()),
            "checkpoint_epoch": int(ckpt.epoch),
            "checkpoint_mini_batch": int(ckpt.mini_batch),
            "training_run_name": run_name,
            "chunk_days": int(settings.chunk_days),
            "ddr_pipeline_version": __version__,
            "description": "daily mean discharge: end-of-step hourly states averaged per day",
        }
    )
    ds.attrs.update(observation_report(ds, scored_from))
    return ds
