"""The training loop: mini-batches of gauges, Adam with an epoch LR table, NaN guard, checkpoints.

Per mini-batch: KAN(attributes) -> static parameters; LSTM(forcings, attributes) -> daily n, d_gw;
denormalise; repeat daily parameters to hourly; Muskingum-Cunge; daily means at the gauges;
loss after warm-up; backward; gradient clipping; Adam step. A NaN/Inf loss or gradient skips the
step; NaN/Inf weights after the step, or parameters from them, undo it (logged, counted; no
checkpoint ever holds such weights); ``experiment.max_consecutive_nonfinite`` such steps in a
row abort with :class:`NonFiniteLossError`. Resuming from a checkpoint continues at the next mini-batch and
reproduces an uninterrupted run bitwise on CPU.

The mini-batches come from a :class:`~ddr_pipeline.data.batch_plan.BatchPlan` (the training
pipeline's ``plan_batches`` node; built from the config when none is given). Under
data-parallel ranks (:class:`~ddr_pipeline.distributed.RankContext`) every rank trains its shard
of each planned mini-batch (:class:`~ddr_pipeline.distributed.ShardedBatchSampler`); the loss
terms and the gradients are summed over ranks, so an N-rank step is the 1-rank step on the same
global batch up to summation order, the NaN guard decides identically on every rank, and only
rank 0 writes checkpoints and reports to the monitor.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ddr_pipeline.config.training import ExperimentConfig, TrainingConfig
from ddr_pipeline.data.batch_plan import BatchPlan, PlannedBatch, plan_experiment
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.data.provenance import provenance_record
from ddr_pipeline.distributed.context import RankContext
from ddr_pipeline.distributed.sampler import ShardedBatchSampler
from ddr_pipeline.evaluation.scoring import median_scores
from ddr_pipeline.model_store.checkpoints import (
    FORMAT_VERSION,
    CheckpointError,
    check_compatible,
    checkpoint_path,
    claim_run_folder,
    read_checkpoint,
    run_folder_lock,
    save_checkpoint,
)
from ddr_pipeline.models import RoutingModel
from ddr_pipeline.models.rng import global_rng_state, seed_everything, set_global_rng_state
from ddr_pipeline.simulation import (
    FeatureIndex,
    NonFiniteOutputsError,
    RoutingSettings,
    output_health,
    physical_parameters,
    simulate,
)
from ddr_pipeline.simulation.batches import RoutingBatch, build_batch
from ddr_pipeline.training.losses import routing_loss_terms
from ddr_pipeline.training.monitoring import NullMonitor, TrainingMonitor
from ddr_pipeline.training.progress import ProgressBar
from ddr_pipeline.training.resources import (
    ActivationCost,
    BatchSize,
    StepPlan,
    activation_cost,
    apply_threads,
    plan_step,
)
from ddr_pipeline.training.validation import ValidationSpec, validate

logger = logging.getLogger(__name__)

#: Statuses the NaN guard counts (the step left the weights as they were before it).
NONFINITE_STATUSES = ("nonfinite_loss", "nonfinite_grad", "nonfinite_weights", "nonfinite_params")
#: Warn when more than this fraction of the learned parameters sit at their range bounds ...
PINNED_WARNING_FRACTION = 0.9
#: ... or when the (pre-clip) gradient norm of a step with a positive loss falls below this.
COLLAPSED_GRAD_NORM = 1e-10


class NonFiniteLossError(RuntimeError):
    """Too many consecutive mini-batches with a NaN/Inf loss or gradient."""


class TrainingFailedError(RuntimeError):
    """The training produced no usable model: no successful step, too many undone steps, or
    a non-finite final loss (:func:`check_outcome`)."""


def check_outcome(history: pd.DataFrame, undone: int, max_fraction: float) -> None:
    """Raise :class:`TrainingFailedError` unless the training took a successful step, undid at
    most ``max_fraction`` of its steps (``undone`` non-finite ones) and ends on a finite loss.

    ``history`` holds one row per mini-batch (``status``, ``loss``), resumed ones included.
    """
    steps = len(history)
    ok = history[history["status"] == "ok"] if steps else history
    hint = (
        "; no trained model is saved or logged. Lower the learning rate "
        "(experiment.learning_rate) or check the inputs and parameter ranges"
    )
    if len(ok) == 0:
        raise TrainingFailedError(
            f"no mini-batch step succeeded ({steps} steps, {undone} undone as non-finite){hint}"
        )
    if undone / steps > max_fraction:
        raise TrainingFailedError(
            f"{undone} of {steps} mini-batch steps were undone as non-finite "
            f"({undone / steps:.0%} > experiment.max_nonfinite_fraction={max_fraction}){hint}"
        )
    final = float(ok["loss"].iloc[-1])
    if not math.isfinite(final):
        raise TrainingFailedError(f"the final loss is {final}, not finite{hint}")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"experiment.device is {device!r} but CUDA is not available")
    return torch.device(device)


def build_optimizer(model: torch.nn.Module, exp: ExperimentConfig) -> torch.optim.Optimizer:
    """The configured optimiser over every network weight, at the learning rate of epoch 1."""
    lr = exp.learning_rate_for_epoch(1)
    if exp.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=exp.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=lr)


@dataclass
class TrainingResult:
    """What :meth:`Trainer.fit` returns."""

    model: RoutingModel
    history: pd.DataFrame  # one row per mini-batch
    checkpoints: list[Path]
    final_checkpoint: Path | None
    stopped_early: bool
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Position:
    """Where the loop is: next epoch / mini-batch to train and NaN-guard counters."""

    epoch: int = 1
    mini_batch: int = 0
    global_step: int = 0
    consecutive_nonfinite: int = 0
    total_nonfinite: int = 0


class Trainer:
    """Train a :class:`RoutingModel` on the training gauges of a :class:`ModelInputs`.

    ``period`` is the ``(first, stop)`` day positions of the training period. ``models_dir`` is
    the folder under which ``<run_name>/saved_models/`` is written. ``max_steps`` stops after that
    many mini-batches in this call (a stop hook for tests and interrupted runs); ``on_step`` is
    called with each history record. ``plan`` is the batch plan (default: drawn from the config);
    ``ranks`` this process's place among data-parallel ranks (default: the only one).
    """

    def __init__(
        self,
        config: TrainingConfig,
        model: RoutingModel,
        inputs: ModelInputs,
        train_gauges: GaugeSet,
        *,
        period: tuple[int, int],
        normalization_stats: Mapping[str, Any],
        models_dir: str | Path,
        monitor: TrainingMonitor | None = None,
        validation: ValidationSpec | None = None,
        max_steps: int | None = None,
        progress: bool = True,
        on_step: Callable[[dict[str, Any]], None] | None = None,
        plan: BatchPlan | None = None,
        ranks: RankContext | None = None,
    ) -> None:
        self.config = config
        self.exp = config.experiment
        self.model = model
        self.inputs = inputs
        self.train_gauges = train_gauges
        self.normalization_stats = dict(normalization_stats)
        self.models_dir = Path(models_dir)
        self.ranks = ranks or RankContext()
        # One run, one writer: only rank 0 reports (and writes checkpoints, see save()).
        self.monitor = (monitor or NullMonitor()) if self.ranks.is_writer else NullMonitor()
        self.validation = validation if self.ranks.is_writer else None
        self.max_steps = max_steps
        self.progress = progress and self.ranks.is_writer
        self.on_step = on_step
        self.device = self.ranks.device(resolve_device(self.exp.device))
        self.features = FeatureIndex.from_names(
            config, inputs.attribute_names, inputs.forcing_names
        )
        self.routing = RoutingSettings.from_config(config)
        seed_everything(self.exp.seed)
        if not self.ranks.parallel:  # ranks run distributed.threads_per_rank (launcher)
            apply_threads(self.exp.threads)
        self._activation_cost: ActivationCost | None = None
        if self.ranks.rank:  # own dropout stream per rank; rank 0 keeps the 1-process stream
            torch.manual_seed(self.exp.seed + self.ranks.rank)
        self.plan = plan or BatchPlan(
            plan_experiment(train_gauges, inputs, period, self.exp), train_gauges, inputs.dates
        )
        self.sampler = ShardedBatchSampler(train_gauges, inputs.network, self.ranks.world_size)
        self.model.to(self.device)
        self.optimizer = build_optimizer(self.model, self.exp)
        self.position = _Position()
        self.history: list[dict[str, Any]] = []
        self.checkpoints: list[Path] = []
        self._steps_done = 0
        self._resumed_from: Path | None = None
        # Model + optimiser state before the last successful step: where the NaN guard rolls back
        # to when the weights that step produced turn out to give non-finite parameters.
        self._before_last_step: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._warned: set[tuple[str, int]] = set()
        #: This training attempt; resuming a checkpoint continues that checkpoint's attempt.
        self.attempt = {"id": uuid.uuid4().hex, "mlflow_run_id": getattr(monitor, "run_id", None)}

    # ------------------------------------------------------------------ checkpoints
    def _payload(self, epoch: int, mini_batch: int, epoch_complete: bool) -> dict[str, Any]:
        rng = global_rng_state()
        rng["ranks"] = self.ranks.gather(torch.get_rng_state())  # every rank's dropout stream
        return {
            "format_version": FORMAT_VERSION,
            "world_size": self.ranks.world_size,
            "epoch": epoch,
            "mini_batch": mini_batch,
            "epoch_complete": epoch_complete,
            "global_step": self.position.global_step,
            "model_state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state": {
                "learning_rate": self.exp.learning_rate_for_epoch(epoch),
                "epoch": epoch,
            },
            "rng_state": rng,
            "nonfinite": {
                "consecutive": self.position.consecutive_nonfinite,
                "total": self.position.total_nonfinite,
            },
            "config": self.config.model_dump(mode="json"),
            "normalization_stats": self.normalization_stats,
            "data_provenance": provenance_record(self.normalization_stats),
            "attribute_names": list(self.inputs.attribute_names),
            "forcing_names": list(self.inputs.forcing_names),
            "history": [dict(record) for record in self.history],
            "attempt": dict(self.attempt),
        }

    def save(self, epoch: int, mini_batch: int, epoch_complete: bool) -> Path:
        """Write the checkpoint after ``mini_batch`` of ``epoch`` and report it as an artifact.

        Every rank calls it (the random states are gathered); rank 0 alone writes.
        """
        if not self._weights_finite():  # the NaN guard undoes such steps: a bug if reached
            raise NonFiniteLossError(f"refusing to checkpoint non-finite weights (epoch {epoch})")
        run_name = str(self.config.run_name)
        path = checkpoint_path(self.models_dir, run_name, epoch, mini_batch)
        payload = self._payload(epoch, mini_batch, epoch_complete)
        if self.ranks.is_writer:
            save_checkpoint(payload, path)
            self.monitor.log_artifact(path, "checkpoints")
        self.checkpoints.append(path)
        return path

    def resume(self, path: str | Path) -> None:
        """Restore everything from a checkpoint; training continues at the next mini-batch.

        Rank 0 reads the file and sends it to the other ranks. A checkpoint written under any
        number of ranks resumes under any other; each rank's dropout stream is restored when the
        numbers agree and restarted from ``seed + rank`` otherwise (rank 0 always restores).
        """
        payload = self.ranks.broadcast(read_checkpoint(path) if self.ranks.is_writer else None)
        check_compatible(
            payload,
            self.config,
            self.inputs.attribute_names,
            self.inputs.forcing_names,
            self.normalization_stats,
        )
        self.model.load_state_dict(payload["model_state_dict"])
        self.model.to(self.device)
        self.optimizer.load_state_dict(payload["optimizer_state_dict"])
        rng = payload["rng_state"]
        set_global_rng_state(rng)
        streams = rng.get("ranks", [rng["torch"]])
        if len(streams) == self.ranks.world_size:
            torch.set_rng_state(streams[self.ranks.rank])
        elif self.ranks.rank:
            torch.manual_seed(self.exp.seed + self.ranks.rank)
        epoch, mini_batch = int(payload["epoch"]), int(payload["mini_batch"])
        complete = bool(payload["epoch_complete"])
        self.position = _Position(
            epoch=epoch + 1 if complete else epoch,
            mini_batch=0 if complete else mini_batch + 1,
            global_step=int(payload["global_step"]),
            consecutive_nonfinite=int(payload["nonfinite"]["consecutive"]),
            total_nonfinite=int(payload["nonfinite"]["total"]),
        )
        self.history = [dict(record) for record in payload["history"]]
        self._check_plan_matches_history(Path(path))
        if "attempt" in payload:
            self.attempt["id"] = str(payload["attempt"]["id"])
        self._resumed_from = Path(path)
        logger.info(
            "Resumed from %s (trained on %d ranks, now %d): continuing at epoch %d, mini-batch %d",
            path,
            int(payload.get("world_size", 1)),
            self.ranks.world_size,
            self.position.epoch,
            self.position.mini_batch,
        )

    def _check_plan_matches_history(self, path: Path) -> None:
        """The plan must hold the mini-batches the checkpoint was trained on."""
        for record in self.history[-1:]:
            planned = self.plan.epoch(int(record["epoch"]))[int(record["mini_batch"])]
            window = str(self.inputs.dates[planned.start].date())
            if ",".join(planned.staids) != record["gauges"] or window != record["window_start"]:
                raise CheckpointError(
                    f"checkpoint {path} trained epoch {record['epoch']} mini-batch "
                    f"{record['mini_batch']} on gauges {record['gauges']} from "
                    f"{record['window_start']}, but the batch plan has {','.join(planned.staids)} "
                    f"from {window}: the plan was drawn with another seed, batch size or window"
                )

    # ------------------------------------------------------------------ one step
    def _set_learning_rate(self, epoch: int) -> float:
        lr = self.exp.learning_rate_for_epoch(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _snapshot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return model, copy.deepcopy(self.optimizer.state_dict())

    def _restore(self, snapshot: tuple[dict[str, Any], dict[str, Any]]) -> None:
        self.model.load_state_dict(snapshot[0])
        self.optimizer.load_state_dict(snapshot[1])

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def _roll_back(self) -> None:
        """Return to the state before the last successful step (its weights gave NaN/Inf)."""
        if self._before_last_step is not None:
            self._restore(self._before_last_step)
            self._before_last_step = None

    def _outputs_finite(self, batch: RoutingBatch | None) -> bool:
        """Whether the current weights give finite parameters on every rank's shard."""
        bad = 0.0
        if batch is not None:
            try:
                with torch.no_grad():
                    physical_parameters(self.model, batch.to(self.device), self.features)
            except NonFiniteOutputsError:
                bad = 1.0
        return self.ranks.sum([bad])[0] == 0

    def memory_plan(self, batch: RoutingBatch) -> StepPlan:
        """Routing checkpoint interval and LSTM chunking of ``batch`` under
        ``experiment.memory_budget_gb`` (:class:`MemoryBudgetError` when it cannot fit)."""
        if self.exp.memory_budget_gb is None:
            return StepPlan()
        if self._activation_cost is None:
            self._activation_cost = activation_cost(self.model)
        lstm = self.config.cuda_lstm
        window = batch.window
        size = BatchSize(
            gauges=len(batch.staids),
            reaches=batch.network.n_reaches,
            days=batch.n_days,
            steps_per_day=self.routing.steps_per_day,
            forcings=window.forcings.shape[-1],
            attributes=window.attributes.shape[-1],
            daily_parameters=len(lstm.learnable_parameters) if lstm is not None else 0,
            dtype_bytes=window.lateral_inflow.element_size(),
            lstm_sequences=(
                self.model.lstm.sequences(batch.network.n_reaches)
                if self.model.lstm is not None
                else None
            ),
        )
        return plan_step(size, self._activation_cost, self.exp.memory_budget_gb)

    def _step(
        self, batch: RoutingBatch | None, planned: PlannedBatch, verify: bool = False
    ) -> dict[str, Any]:
        """Forward, loss, backward, clip and step on this rank's shard (``None``: empty shard).

        The loss numerator and count are summed over ranks and each rank back-propagates its
        share ``numerator / global count``; the summed gradients then equal the gradient of
        the global mini-batch's loss.
        """
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        sim = None
        numerator = count = torch.zeros((), device=self.device)
        bad_params = 0.0
        if batch is not None:
            plan = self.memory_plan(batch)
            try:
                sim = simulate(
                    self.model,
                    batch.to(self.device),
                    self.features,
                    self.routing,
                    checkpoint_every=plan.checkpoint_every,
                    lstm_chunk=plan.lstm_chunk,
                )
            except NonFiniteOutputsError:
                bad_params = 1.0
        if sim is not None:
            observed = batch.observations.to(self.device)
            numerator, count = routing_loss_terms(
                sim.daily,
                observed,
                self.config.loss.name,
                warmup=self.exp.warmup,
                eps=self.config.loss.eps,
            )
        total, total_count, bad = self.ranks.sum(
            [float(numerator.detach()), float(count), bad_params]
        )
        if bad:  # the current weights (the last step's) give NaN/Inf parameters: undo that step
            self._roll_back()
            return {"loss": math.nan, "status": "nonfinite_params", "grad_norm": math.nan}
        if total_count == 0:
            logger.warning("Mini-batch %s has no valid observations: skipped", planned.staids)
            return {"loss": math.nan, "status": "no_observations", "grad_norm": math.nan}
        loss = numerator / total_count
        loss_value = total / total_count if self.ranks.parallel else float(loss.detach())
        if not math.isfinite(loss_value):
            return {"loss": loss_value, "status": "nonfinite_loss", "grad_norm": math.nan}
        if sim is not None:
            loss.backward()
        self.ranks.sum_gradients(list(self.model.parameters()))
        grad_norm = self._clip_gradients()
        if not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            return {"loss": loss_value, "status": "nonfinite_grad", "grad_norm": grad_norm}
        before = self._snapshot()
        self.optimizer.step()
        status = "ok"
        # Every guard decision is all-reduced so that all ranks undo (or keep) the same step.
        if self.ranks.sum([0.0 if self._weights_finite() else 1.0])[0]:
            status = "nonfinite_weights"
        elif verify and not self._outputs_finite(batch):
            status = "nonfinite_params"
        if status != "ok":
            self._restore(before)
            return {"loss": loss_value, "status": status, "grad_norm": grad_norm}
        self._before_last_step = before
        record: dict[str, Any] = {"loss": loss_value, "status": "ok", "grad_norm": grad_norm}
        if sim is not None:
            if sim.outputs is not None:
                record["pinned_fraction"] = output_health(sim.outputs)[1]
            record.update(self.model.describe(sim.outputs))
            record.update(self._maybe_batch_metrics(sim.daily, observed))
        else:
            record.update(self._maybe_batch_metrics(None, None))
        return record

    def _clip_gradients(self) -> float:
        params = [p for p in self.model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        max_norm = self.exp.grad_clip_norm if self.exp.grad_clip_norm is not None else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm, error_if_nonfinite=False)
        return float(norm)

    def _maybe_batch_metrics(
        self, daily: torch.Tensor | None, observed: torch.Tensor | None
    ) -> dict[str, float]:
        """Median scores of the global mini-batch's gauges (the shards' series are gathered)."""
        every = self.exp.validation_every
        if every is None or (self.position.global_step + 1) % every:
            return {}
        local = None
        if daily is not None and observed is not None:
            local = (
                daily.detach().cpu().numpy()[self.exp.warmup :].T,
                observed.cpu().numpy()[self.exp.warmup :].T,
            )
        shards = [pair for pair in self.ranks.gather(local) if pair is not None]
        prediction = np.concatenate([p for p, _ in shards])
        target = np.concatenate([t for _, t in shards])
        return {f"batch_{k}": v for k, v in median_scores(prediction, target).items()}

    def _warn_degenerate(self, record: dict[str, Any]) -> None:
        """Warn (once per epoch and kind) about pinned parameters or a collapsed gradient."""
        epoch = record["epoch"]
        if record.get("pinned_fraction", 0.0) > PINNED_WARNING_FRACTION:
            self._warn_once(
                "pinned",
                epoch,
                "%.0f%% of the learned parameters sit at their range bounds at epoch %d "
                "mini-batch %d: the networks saturated (learning rate too high?)",
                100 * record["pinned_fraction"],
                epoch,
                record["mini_batch"],
            )
        if (
            record["status"] == "ok"
            and record["loss"] > 0
            and record["grad_norm"] < COLLAPSED_GRAD_NORM
        ):
            self._warn_once(
                "gradient",
                epoch,
                "gradient norm collapsed to %.3g at epoch %d mini-batch %d: training has stalled",
                record["grad_norm"],
                epoch,
                record["mini_batch"],
            )

    def _warn_once(self, kind: str, epoch: int, message: str, *args: Any) -> None:
        if (kind, epoch) not in self._warned:
            self._warned.add((kind, epoch))
            logger.warning(message, *args)

    def _guard(self, record: dict[str, Any]) -> None:
        """Count non-finite steps; abort after ``max_consecutive_nonfinite`` in a row."""
        self._warn_degenerate(record)
        if record["status"] in NONFINITE_STATUSES:
            self.position.consecutive_nonfinite += 1
            self.position.total_nonfinite += 1
            logger.warning(
                "Non-finite %s at epoch %d mini-batch %d (loss=%s): step undone (%d in a row)",
                record["status"].removeprefix("nonfinite_"),
                record["epoch"],
                record["mini_batch"],
                record["loss"],
                self.position.consecutive_nonfinite,
            )
            if self.position.consecutive_nonfinite >= self.exp.max_consecutive_nonfinite:
                raise NonFiniteLossError(
                    f"{self.position.consecutive_nonfinite} consecutive mini-batches had a "
                    f"non-finite loss, gradient, weights or parameters (last: epoch {record['epoch']}, mini-batch "
                    f"{record['mini_batch']}, gauges {record['gauges']}); "
                    "check the inputs and parameter ranges or lower the learning rate "
                    "(experiment.max_consecutive_nonfinite)"
                )
        elif record["status"] == "ok":
            self.position.consecutive_nonfinite = 0

    # ------------------------------------------------------------------ loop
    def _validate(self, step: int) -> dict[str, float]:
        if self.validation is None:
            return {}
        metrics = validate(self.model, self.validation, self.features, self.routing, self.device)
        self.monitor.log_metrics(metrics, step=step)
        if self.history:  # kept with the mini-batch it follows (loss curve, checkpoints)
            self.history[-1].update(metrics)
        return metrics

    def _log(self, record: dict[str, Any]) -> None:
        numeric = {
            k: float(v)
            for k, v in record.items()
            if isinstance(v, int | float) and k not in ("epoch", "mini_batch", "step")
        }
        numeric["nonfinite_total"] = float(self.position.total_nonfinite)
        self.monitor.log_metrics(numeric, step=record["step"])
        if self.on_step is not None:
            self.on_step(record)

    def _shard_batch(self, planned: PlannedBatch) -> RoutingBatch | None:
        """This rank's routing problem of a planned mini-batch (``None`` for an empty shard)."""
        shard = self.sampler.shard(planned.positions, self.ranks.rank)
        if not shard:
            return None
        return build_batch(self.inputs, self.train_gauges, shard, planned.start, planned.stop)

    def _step_seconds(self, seconds: float) -> dict[str, float]:
        """The step's wall time (slowest rank) and, under several ranks, each rank's time."""
        if not self.ranks.parallel:
            return {"seconds": seconds}
        times = self.ranks.gather(seconds)
        return {"seconds": max(times), **{f"seconds_rank{r}": t for r, t in enumerate(times)}}

    def _run_epoch(self, epoch: int, start_mb: int, bar: Any) -> bool:
        """Train one epoch from ``start_mb``; return ``True`` when ``max_steps`` stopped it."""
        lr = self._set_learning_rate(epoch)
        planned_batches = self.plan.epoch(epoch)
        n_batches = len(planned_batches)
        for planned in planned_batches[start_mb:]:
            mb = planned.mini_batch
            started = time.perf_counter()
            last = mb == n_batches - 1
            checkpoint_due = last or (mb + 1) % self.exp.checkpoint_every == 0
            record = self._step(self._shard_batch(planned), planned, verify=checkpoint_due)
            record.update(
                epoch=epoch,
                mini_batch=mb,
                step=self.position.global_step,
                lr=lr,
                gauges=",".join(planned.staids),
                window_start=str(self.inputs.dates[planned.start].date()),
            )
            record.update(self._step_seconds(time.perf_counter() - started))
            self._guard(record)
            self.history.append(record)
            self._log(record)
            bar.update(1)
            bar.set_postfix(epoch=epoch, mb=f"{mb + 1}/{n_batches}", loss=f"{record['loss']:.4g}")
            self.position.global_step += 1
            self._steps_done += 1
            if self._due_validation():
                self._validate(self.position.global_step - 1)
            if not last and (mb + 1) % self.exp.checkpoint_every == 0:
                self.save(epoch, mb, epoch_complete=False)
            if self._budget_spent() and not last:
                return True
        self.save(epoch, n_batches - 1, epoch_complete=True)
        self._log_epoch(epoch)
        return False

    def _log_epoch(self, epoch: int) -> None:
        """The epoch's mean loss over its finite mini-batches (a smoother curve to compare)."""
        losses = [r["loss"] for r in self.history if r["epoch"] == epoch and r["status"] == "ok"]
        if losses:
            self.monitor.log_metrics(
                {"epoch_mean_loss": float(np.mean(losses)), "epoch": float(epoch)},
                step=self.position.global_step - 1,
            )

    def _budget_spent(self) -> bool:
        return self.max_steps is not None and self._steps_done >= self.max_steps

    def _due_validation(self) -> bool:
        every = self.exp.validation_every
        return every is not None and self.position.global_step % every == 0

    def fit(self) -> TrainingResult:
        """Train until ``experiment.epochs`` (or ``max_steps``); return model and history.

        Rank 0 holds the run folder's lock throughout and refuses a folder that holds another
        training attempt unless it resumes that attempt (:func:`claim_run_folder`).
        """
        run_name = str(self.config.run_name)
        writer = self.ranks.is_writer
        with run_folder_lock(self.models_dir, run_name) if writer else contextlib.nullcontext():
            if self.exp.checkpoint:
                self.resume(self.exp.checkpoint)
            if writer:
                claim_run_folder(
                    self.models_dir,
                    run_name,
                    self.attempt["id"],
                    resuming=bool(self.exp.checkpoint),
                    replace=self.config.monitoring.replace_run,
                )
            self.ranks.broadcast_parameters(self.model)
            return self._fit()

    def _fit(self) -> TrainingResult:
        self._steps_done = 0
        start_epoch, start_mb = self.position.epoch, self.position.mini_batch
        epochs = range(start_epoch, self.exp.epochs + 1)
        total = sum(self.plan.n_batches(e) for e in epochs) - start_mb
        stopped = False
        with ProgressBar(max(total, 0), "training", disable=not self.progress) as bar:
            for epoch in range(start_epoch, self.exp.epochs + 1):
                stopped = self._run_epoch(epoch, start_mb if epoch == start_epoch else 0, bar)
                if stopped:
                    break
                if self.validation is not None and self.exp.validation_every is None:
                    self._validate(self.position.global_step - 1)
                if self._budget_spent():
                    stopped = epoch < self.exp.epochs
                    break
        history = pd.DataFrame(self.history)
        check_outcome(history, self.position.total_nonfinite, self.exp.max_nonfinite_fraction)
        return TrainingResult(
            model=self.model,
            history=history,
            checkpoints=list(self.checkpoints),
            final_checkpoint=self.checkpoints[-1] if self.checkpoints else self._resumed_from,
            stopped_early=stopped,
            summary={
                **_summary(history, self.position),
                "world_size": self.ranks.world_size,
                "attempt": self.attempt["id"],
            },
        )


def _summary(history: pd.DataFrame, position: _Position) -> dict[str, Any]:
    if history.empty:
        return {"mini_batches": 0, "skipped_nonfinite": int(position.total_nonfinite)}
    ok = history[history["status"] == "ok"]
    return {
        "mini_batches": int(len(history)),
        "skipped_nonfinite": int(position.total_nonfinite),
        "final_loss": float(ok["loss"].iloc[-1]) if len(ok) else math.nan,
        "mean_loss_last_epoch": float(ok[ok["epoch"] == ok["epoch"].max()]["loss"].mean())
        if len(ok)
        else math.nan,
        "seconds": float(np.nansum(history["seconds"])),
    }
