"""The evaluation output dataset: the model and its baselines at every gauge over a period."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline import __version__, simulation
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.data.schema import STREAMFLOW_VAR, UNITS
from ddr_pipeline.evaluation import baselines
from ddr_pipeline.evaluation.report import (
    INITIAL,
    REFERENCE,
    SUMMED,
    UNTRAINED,
    observation_report,
)
from ddr_pipeline.inference.gauges import (
    PredictionSettings,
    gauge_array,
    known_gauges,
    route_trained,
    run_rollout,
    trained_source,
)
from ddr_pipeline.inference.periods import routed_days
from ddr_pipeline.model_store.checkpoints import (
    MODEL_FINGERPRINT_ATTR,
    LoadedCheckpoint,
    model_fingerprint,
)
from ddr_pipeline.models import build_models

logger = logging.getLogger(__name__)


def initial_checkpoint(ckpt: LoadedCheckpoint) -> LoadedCheckpoint:
    """The checkpoint's model at its starting point: the networks of its config rebuilt at their
    initial weights (:func:`ddr_pipeline.models.build_models` is seeded by
    ``experiment.seed`` and leaves the global RNGs alone, so this is the model before its first
    optimiser step), with the checkpoint's config and statistics."""
    return dataclasses.replace(ckpt, model=build_models(ckpt.config).eval(), epoch=0, mini_batch=0)


def baseline_predictions(
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    gauge_set: GaugeSet,
    problem: simulation.RoutingProblem,
    settings: PredictionSettings,
    *,
    days: slice,
    stated: dict[str, str] | None = None,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, (days, gauges) daily values)`` of every enabled baseline.

    ``stated`` (when given) receives ``{baseline: what parameters it routes with}``.
    """
    stated = {} if stated is None else stated
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
        stated[UNTRAINED] = json.dumps(source.stated())
        logger.info("untrained baseline parameters: %s", stated[UNTRAINED])
        routed = run_rollout(ckpt, inputs, problem, source, days, settings)
        yield UNTRAINED, routed.daily
    if cfg.initial:
        initial = initial_checkpoint(ckpt)
        stated[INITIAL] = (
            f"the trained model's networks at their initial weights (seed "
            f"{ckpt.config.experiment.seed}, before the first optimiser step)"
        )
        source = trained_source(initial, inputs)
        yield INITIAL, run_rollout(initial, inputs, problem, source, days, settings).daily
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
    ``(gage_id, time)``, m³/s; attrs: period, scored period, checkpoint and the fingerprint of its
    weights (``model_fingerprint``), warm-up, gauges and days without observations.
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
    stated: dict[str, str] = {}
    for name, values in baseline_predictions(
        ckpt, inputs, gauge_set, problem, settings, days=days.days, stated=stated
    ):
        data[f"baseline_{name}"] = gauge_array(values[days.keep], gauge_set.staids, dates, units)
        if name in stated:
            data[f"baseline_{name}"].attrs["parameters"] = stated[name]
    scored_from = dates[min(max(days.shortfall, 0), len(dates) - 1)]
    ds = xr.Dataset(data)
    ds.attrs.update(
        {
            "units": units,
            "period": list(period),
            "scored_from": str(scored_from.date()),
            "warmup_days": days.warmup_days,
            "routing_started": str(inputs.dates[days.route_from].date()),
            MODEL_FINGERPRINT_ATTR: model_fingerprint(ckpt.payload["model_state_dict"]),
            "checkpoint_epoch": int(ckpt.epoch),
            "checkpoint_mini_batch": int(ckpt.mini_batch),
            "training_run_name": run_name,
            "chunk_days": int(settings.chunk_days),
            "ddr_pipeline_version": __version__,
            "description": "daily mean discharge: end-of-step hourly states averaged per day",
        }
    )
    ds.attrs.update({f"baseline_{name}_parameters": text for name, text in stated.items()})
    ds.attrs.update(observation_report(ds, scored_from))
    return ds
