"""Thin nodes of the ``training`` pipeline; the work is done in ``ddr_pipeline.training``."""

from __future__ import annotations

import logging
import time
from typing import Any

import mlflow
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from ddr_pipeline.config.training import TrainingConfig, load_training_config
from ddr_pipeline.data.provenance import STATS_FINGERPRINT, check_provenance
from ddr_pipeline.distributed import env_has_process_group
from ddr_pipeline.evaluation import plots
from ddr_pipeline.model_store.checkpoints import LoadedCheckpoint, read_checkpoint
from ddr_pipeline.models import build_models
from ddr_pipeline.training import MlflowMonitor, NullMonitor, TrainingMonitor
from ddr_pipeline.training.parallel import MlflowTarget, run_training
from ddr_pipeline.training.setup import (
    TrainingData,
    batch_plan,
    prepare_training_data,
    score_period,
)

logger = logging.getLogger(__name__)


def resolve_training_config(params: dict[str, Any], geodataset: str) -> TrainingConfig:
    """Validate ``params:training``; the config must name the pipeline's geodataset."""
    config = load_training_config(params)
    if config.geodataset != geodataset:
        raise ValueError(
            f"training.geodataset is {config.geodataset!r} but this pipeline reads the "
            f"{geodataset!r} model inputs"
        )
    return config


def prepare_data(
    model_inputs: xr.Dataset, gauges: pd.DataFrame, config: TrainingConfig
) -> TrainingData:
    """Model inputs, training/validation gauges and periods as the trainer needs them.

    Refuses model inputs built with another gauge split than ``gauges`` (:mod:`ddr_pipeline.data.provenance`).
    """
    check_provenance(gauges=gauges, model_inputs=model_inputs.attrs)
    return prepare_training_data(model_inputs, gauges, config)


def plan_batches(config: TrainingConfig, data: TrainingData) -> pd.DataFrame:
    """The batch plan: per epoch and mini-batch the gauges, window and sub-network size."""
    plan = batch_plan(config, data)
    logger.info(
        "Batch plan: %d epochs x %d mini-batches, %d-%d reaches per mini-batch",
        plan["epoch"].max(),
        int((plan["epoch"] == 1).sum()),
        plan["n_reaches"].min(),
        plan["n_reaches"].max(),
    )
    return plan


def _mlflow_target() -> MlflowTarget | None:
    run = mlflow.active_run()
    return None if run is None else MlflowTarget(mlflow.get_tracking_uri(), run.info.run_id)


def _monitor(config: TrainingConfig) -> TrainingMonitor:
    if mlflow.active_run() is None:
        logger.info("No active MLflow run: training metrics are not logged to MLflow")
        return NullMonitor()
    return MlflowMonitor(log_checkpoints=config.monitoring.log_checkpoints)


def train_model(
    config: TrainingConfig,
    data: TrainingData,
    normalization_stats: dict[str, Any],
    batch_plan: pd.DataFrame,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Train the batch plan on ``training.distributed`` ranks; return the final checkpoint
    payload, the per-mini-batch history and a summary."""
    if env_has_process_group():
        raise RuntimeError(
            "kedro run was started by torchrun: run it once on the head node with "
            "training.distributed.nproc_per_node / nnodes instead; other nodes join with "
            "`torchrun ... -m ddr_pipeline.distributed` (docs/distributed.md)"
        )
    check_provenance(
        gauges=data.gauges,
        model_inputs={STATS_FINGERPRINT: data.stats_fingerprint},
        stats=normalization_stats,
    )
    monitor = _monitor(config)
    if mlflow.active_run() is not None:
        mlflow.log_param("world_size", config.distributed.world_size)
    started = time.perf_counter()
    result = run_training(
        config, data, normalization_stats, batch_plan, monitor, mlflow_target=_mlflow_target()
    )
    if result.final_checkpoint is None:
        raise RuntimeError("training produced no checkpoint (zero mini-batches?)")
    payload = read_checkpoint(result.final_checkpoint)
    attempt = result.summary.get("attempt")
    if payload.get("attempt", {}).get("id") != attempt:
        raise RuntimeError(
            f"{result.final_checkpoint} was written by another training attempt than this one "
            f"({attempt}); not logging or saving it"
        )
    monitor.log_artifact(result.final_checkpoint, "model_checkpoint")
    monitor.log_model(result.final_checkpoint, "model")
    summary = {
        **result.summary,
        "run_name": config.run_name,
        "final_checkpoint": str(result.final_checkpoint),
        "wall_seconds": time.perf_counter() - started,
    }
    logger.info("Training finished: %s", summary)
    history = result.history.astype({"gauges": "string", "status": "string"})
    return payload, history, summary


def loss_figure(history: pd.DataFrame, config: TrainingConfig) -> Figure:
    """Training loss per mini-batch, epoch means and marks, held-out validation NSE."""
    return plots.plot_loss_curve(history, loss_label=plots.loss_label(config.loss.name))


def score_test_period(
    trained_model: LoadedCheckpoint | dict[str, Any], config: TrainingConfig, data: TrainingData
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Per-gauge test-period scores and MLflow metrics of medians at well-observed gauges.

    ``trained_model`` is what ``training.trained_model`` loads (a :class:`LoadedCheckpoint`) or,
    in memory, the checkpoint payload.
    """
    if isinstance(trained_model, LoadedCheckpoint):
        model = trained_model.model
    else:
        model = build_models(config)
        model.load_state_dict(trained_model["model_state_dict"])
    table, summary = score_period(model, config, data, "test")
    logger.info("Test period (well-observed gauges): %s", summary)
    return table, {f"test_{k}": {"value": v, "step": 0} for k, v in summary.items()}
