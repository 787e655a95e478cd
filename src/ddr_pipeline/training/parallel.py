"""Training on one process or on data-parallel ranks, from the same inputs and batch plan.

:func:`run_training` is what the training node calls. With ``distributed.nproc_per_node`` and
``distributed.nnodes`` both 1 it trains in this process; otherwise it launches the ranks
(:func:`ddr_pipeline.distributed.launch.launch`), each training its shards of the plan's
mini-batches, and returns rank 0's :class:`TrainingResult`. Rank 0 logs into the MLflow run
given as ``mlflow_run`` (the run kedro-mlflow opened), so one training is one MLflow run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from ddr_pipeline.config.training import TrainingConfig
from ddr_pipeline.data.batch_plan import BatchPlan
from ddr_pipeline.distributed.context import RankContext
from ddr_pipeline.distributed.launch import DistributedRunError, LaunchSettings, launch
from ddr_pipeline.model_store.checkpoints import latest_checkpoint
from ddr_pipeline.training.monitoring import MlflowMonitor, NullMonitor, TrainingMonitor
from ddr_pipeline.training.setup import TrainingData, build_trainer
from ddr_pipeline.training.trainer import TrainingResult, resolve_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MlflowTarget:
    """The MLflow run rank 0 logs into."""

    tracking_uri: str
    run_id: str


@dataclass
class TrainingJob:
    """One data-parallel training: what every rank needs (sent to the ranks by pickling)."""

    config: TrainingConfig
    data: TrainingData
    normalization_stats: dict[str, Any]
    plan: pd.DataFrame
    mlflow: MlflowTarget | None = None
    max_steps: int | None = None
    on_step: Callable[[dict[str, Any]], None] | None = None

    @property
    def threads_per_rank(self) -> int:
        """torch / routing threads of every rank."""
        return self.config.distributed.threads_per_rank

    def run(self, ranks: RankContext) -> TrainingResult:
        """Train this rank's shards; rank 0 reports to MLflow."""
        monitor: TrainingMonitor = NullMonitor()
        if self.mlflow is not None and ranks.is_writer:
            import mlflow

            mlflow.set_tracking_uri(self.mlflow.tracking_uri)
            mlflow.start_run(run_id=self.mlflow.run_id)
            monitor = MlflowMonitor(log_checkpoints=self.config.monitoring.log_checkpoints)
        return train_in_process(
            self.config,
            self.data,
            self.normalization_stats,
            self.plan,
            monitor,
            ranks=ranks,
            max_steps=self.max_steps,
            on_step=self.on_step,
        )


def train_in_process(  # noqa: PLR0913 (the trainer's inputs)
    config: TrainingConfig,
    data: TrainingData,
    normalization_stats: Mapping[str, Any],
    plan: pd.DataFrame,
    monitor: TrainingMonitor,
    *,
    ranks: RankContext | None = None,
    max_steps: int | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> TrainingResult:
    """Train this process's part (all of it for a single process)."""
    trainer = build_trainer(
        config,
        data,
        normalization_stats,
        monitor,
        max_steps=max_steps,
        plan=BatchPlan(plan, data.train_gauges, data.inputs.dates),
        ranks=ranks,
    )
    trainer.on_step = on_step
    return trainer.fit()


def launch_settings(config: TrainingConfig) -> LaunchSettings:
    """Launcher settings from ``training.distributed`` and ``experiment.device``."""
    d = config.distributed
    device = resolve_device(config.experiment.device)
    return LaunchSettings(
        nproc_per_node=d.nproc_per_node,
        nnodes=d.nnodes,
        master_addr=d.master_addr,
        master_port=d.master_port,
        backend=d.backend,
        device=device.type,
        timeout_s=d.timeout_s,
    )


def run_training(
    config: TrainingConfig,
    data: TrainingData,
    normalization_stats: Mapping[str, Any],
    plan: pd.DataFrame,
    monitor: TrainingMonitor,
    *,
    mlflow_target: MlflowTarget | None = None,
    **job_options: Any,
) -> TrainingResult:
    """Train on ``config.distributed.world_size`` ranks (in this process when it is 1).

    ``monitor`` reports the single-process run; under several ranks rank 0 logs into
    ``mlflow_target`` instead. A failed rank raises :class:`DistributedRunError` naming it and
    the last checkpoint written.
    """
    if config.distributed.world_size == 1:
        return train_in_process(config, data, normalization_stats, plan, monitor, **job_options)
    settings = launch_settings(config)
    if settings.device == "cuda" and settings.nproc_per_node > torch.cuda.device_count():
        raise ValueError(
            f"distributed.nproc_per_node is {settings.nproc_per_node} but this node has "
            f"{torch.cuda.device_count()} CUDA devices (one per rank)"
        )
    job = TrainingJob(config, data, dict(normalization_stats), plan, mlflow_target, **job_options)
    try:
        return launch(job, settings)
    except DistributedRunError as error:
        last = latest_checkpoint(config.monitoring.models_dir, str(config.run_name))
        kept = f"the last checkpoint is {last}" if last else "no checkpoint was written yet"
        raise DistributedRunError(f"{error}\n{kept} (resume with experiment.checkpoint)") from None
