"""Assemble a training run from the model-ready data: inputs, gauge splits, validation, trainer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import xarray as xr

from ddr_pipeline.config.training import TrainingConfig
from ddr_pipeline.data.batch_plan import BatchPlan, plan_experiment
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.data.provenance import STATS_FINGERPRINT
from ddr_pipeline.distributed.context import RankContext
from ddr_pipeline.evaluation import scoring
from ddr_pipeline.inference.gauges import route_gauges
from ddr_pipeline.models import RoutingModel, build_models
from ddr_pipeline.training.monitoring import TrainingMonitor
from ddr_pipeline.training.trainer import Trainer
from ddr_pipeline.training.validation import ValidationSpec

logger = logging.getLogger(__name__)

TRAIN_SPLIT = "train"
VALIDATION_SPLIT = "validation"


@dataclass
class TrainingData:
    """Everything the trainer reads: inputs, training gauges, their period, validation."""

    inputs: ModelInputs
    gauges: pd.DataFrame
    train_gauges: GaugeSet
    period: tuple[int, int]
    validation: ValidationSpec | None
    #: Fingerprint of the statistics the inputs were normalised with (None: not recorded).
    stats_fingerprint: str | None = None


def prepare_training_data(
    model_inputs: xr.Dataset, gauges: pd.DataFrame, config: TrainingConfig
) -> TrainingData:
    """Training gauges (``split == train``) over the inputs' train period; validation gauges
    (``split == validation``) over ``monitoring.validation_period`` (``None`` if there are none).
    """
    inputs = ModelInputs.from_dataset(model_inputs)
    splits = set(gauges["split"].astype(str))
    validation = None
    if VALIDATION_SPLIT in splits:
        first, stop = inputs.period(config.monitoring.validation_period)
        start = max(first - config.monitoring.validation_warmup_days, 0)
        validation = ValidationSpec(
            inputs,
            GaugeSet.from_table(gauges, inputs, VALIDATION_SPLIT),
            start,
            stop,
            warmup=first - start,
        )
    data = TrainingData(
        inputs=inputs,
        gauges=gauges,
        train_gauges=GaugeSet.from_table(gauges, inputs, TRAIN_SPLIT),
        period=inputs.period("train"),
        validation=validation,
        stats_fingerprint=model_inputs.attrs.get(STATS_FINGERPRINT),
    )
    logger.info(
        "Training on %d gauges over %s..%s (%d days); %d validation gauges",
        len(data.train_gauges),
        inputs.dates[data.period[0]].date(),
        inputs.dates[data.period[1] - 1].date(),
        data.period[1] - data.period[0],
        0 if validation is None else len(validation.gauges),
    )
    return data


def batch_plan(config: TrainingConfig, data: TrainingData) -> pd.DataFrame:
    """The batch plan table of the run (:func:`ddr_pipeline.data.batch_plan.plan_batches`)."""
    return plan_experiment(data.train_gauges, data.inputs, data.period, config.experiment)


def build_trainer(
    config: TrainingConfig,
    data: TrainingData,
    normalization_stats: Mapping[str, Any],
    monitor: TrainingMonitor | None = None,
    max_steps: int | None = None,
    *,
    plan: BatchPlan | None = None,
    ranks: RankContext | None = None,
) -> Trainer:
    """A :class:`Trainer` for ``config`` over ``data`` (fresh model seeded by the config).

    ``plan`` defaults to :func:`batch_plan`; ``ranks`` to a single process.
    """
    return Trainer(
        config,
        build_models(config),
        data.inputs,
        data.train_gauges,
        period=data.period,
        normalization_stats=normalization_stats,
        models_dir=config.monitoring.models_dir,
        monitor=monitor,
        validation=data.validation,
        max_steps=max_steps,
        progress=config.monitoring.progress_bar,
        plan=plan,
        ranks=ranks,
    )


def score_period(
    model: RoutingModel,
    config: TrainingConfig,
    data: TrainingData,
    period: str | tuple[str, str] = "test",
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-gauge scores over ``period`` (:func:`ddr_pipeline.evaluation.scoring.score_gauges`) and medians
    at the well-observed gauges (``monitoring.well_observed_fraction``), all and per split.

    All gauges are routed in one window (:func:`ddr_pipeline.inference.gauges.route_gauges`)
    starting ``monitoring.validation_warmup_days`` before the period; those days are not scored.
    """
    inputs = data.inputs
    everyone = GaugeSet.from_table(data.gauges, inputs, None)
    routed = route_gauges(
        model,
        config,
        inputs,
        everyone,
        inputs.period(period),
        warmup_days=config.monitoring.validation_warmup_days,
    )
    table = scoring.score_gauges(
        routed.simulated,
        routed.observed,
        everyone.staids,
        data.gauges["split"].astype(str).to_numpy(),
        config.monitoring.well_observed_fraction,
    )
    return table, scoring.well_observed_medians(table)
