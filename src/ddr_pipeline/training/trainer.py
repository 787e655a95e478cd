"""The training loop: mini-batches of gauges, Adam with an epoch LR table, NaN guard, checkpoints.

Per mini-batch: KAN(attributes) -> static parameters; LSTM(forcings, attributes) -> daily n, d_gw;
denormalise; repeat daily parameters to hourly; Muskingum-Cunge; daily means at the gauges;
loss after warm-up; backward; gradient clipping; Adam step. A NaN/Inf loss or gradient skips the
step (logged, counted); ``experiment.max_consecutive_nonfinite`` such steps in a row abort with
:class:`NonFiniteLossError`. Resuming from a checkpoint continues at the next mini-batch and
reproduces an uninterrupted run bitwise on CPU.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ddr_pipeline.config import TrainingConfig
from ddr_pipeline.console import ProgressBar
from ddr_pipeline.data.batching import (
    GaugeDataset,
    GaugeSet,
    ModelInputs,
    RoutingBatch,
    RoutingCollator,
    make_dataloader,
)
from ddr_pipeline.losses import NoValidObservationsError, routing_loss
from ddr_pipeline.models import RoutingModel
from ddr_pipeline.training.checkpoints import (
    FORMAT_VERSION,
    check_compatible,
    checkpoint_path,
    read_checkpoint,
    save_checkpoint,
)
from ddr_pipeline.training.forward import FeatureIndex, simulate
from ddr_pipeline.training.monitoring import NullMonitor, TrainingMonitor
from ddr_pipeline.training.rng import (
    global_rng_state,
    make_generator,
    seed_everything,
    set_global_rng_state,
)
from ddr_pipeline.training.validation import ValidationSpec, batch_metrics, validate

logger = logging.getLogger(__name__)

#: Seed offset of the window generator (the sampler generator uses the seed itself).
WINDOW_SEED_OFFSET = 1


class NonFiniteLossError(RuntimeError):
    """Too many consecutive mini-batches with a NaN/Inf loss or gradient."""


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"experiment.device is {device!r} but CUDA is not available")
    return torch.device(device)


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
    called with each history record.
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
    ) -> None:
        self.config = config
        self.exp = config.experiment
        self.model = model
        self.inputs = inputs
        self.normalization_stats = dict(normalization_stats)
        self.models_dir = Path(models_dir)
        self.monitor = monitor or NullMonitor()
        self.validation = validation
        self.max_steps = max_steps
        self.progress = progress
        self.on_step = on_step
        self.device = resolve_device(self.exp.device)
        self.features = FeatureIndex.from_names(
            config, inputs.attribute_names, inputs.forcing_names
        )
        seed_everything(self.exp.seed)
        self.sampler_generator = make_generator(self.exp.seed)
        self.collator = RoutingCollator(
            inputs,
            train_gauges,
            period,
            self.exp.rho,
            make_generator(self.exp.seed + WINDOW_SEED_OFFSET),
        )
        self.loader = make_dataloader(
            GaugeDataset(train_gauges),
            self.collator,
            self.exp.batch_size,
            self.exp.shuffle,
            self.sampler_generator,
        )
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.exp.learning_rate_for_epoch(1)
        )
        self.position = _Position()
        self.history: list[dict[str, Any]] = []
        self.checkpoints: list[Path] = []
        self._epoch_start_sampler_state = self.sampler_generator.get_state()
        self._steps_done = 0
        self._resumed_from: Path | None = None

    # ------------------------------------------------------------------ checkpoints
    def _payload(self, epoch: int, mini_batch: int, epoch_complete: bool) -> dict[str, Any]:
        rng = global_rng_state()
        rng["sampler"] = self.sampler_generator.get_state()
        rng["sampler_epoch_start"] = (
            self.sampler_generator.get_state()
            if epoch_complete
            else self._epoch_start_sampler_state
        )
        rng["window"] = self.collator.generator.get_state()
        return {
            "format_version": FORMAT_VERSION,
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
            "attribute_names": list(self.inputs.attribute_names),
            "forcing_names": list(self.inputs.forcing_names),
            "history": [dict(record) for record in self.history],
        }

    def save(self, epoch: int, mini_batch: int, epoch_complete: bool) -> Path:
        """Write the checkpoint after ``mini_batch`` of ``epoch`` and report it as an artifact."""
        run_name = str(self.config.run_name)
        path = checkpoint_path(self.models_dir, run_name, epoch, mini_batch)
        save_checkpoint(self._payload(epoch, mini_batch, epoch_complete), path)
        self.checkpoints.append(path)
        self.monitor.log_artifact(path, "checkpoints")
        return path

    def resume(self, path: str | Path) -> None:
        """Restore everything from a checkpoint; training continues at the next mini-batch."""
        payload = read_checkpoint(path)
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
        self.sampler_generator.set_state(rng["sampler_epoch_start"])
        self._epoch_start_sampler_state = rng["sampler_epoch_start"]
        self.collator.generator.set_state(rng["window"])
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
        self._resumed_from = Path(path)
        logger.info(
            "Resumed from %s: continuing at epoch %d, mini-batch %d",
            path,
            self.position.epoch,
            self.position.mini_batch,
        )

    # ------------------------------------------------------------------ one step
    def _set_learning_rate(self, epoch: int) -> float:
        lr = self.exp.learning_rate_for_epoch(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _step(self, batch: RoutingBatch) -> dict[str, Any]:
        """Forward, loss, backward, clip and step on one batch; returns the history record."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        sim = simulate(self.model, batch.to(self.device), self.features, self.config)
        observed = batch.observations.to(self.device)
        try:
            loss = routing_loss(
                sim.daily,
                observed,
                self.config.loss.name,
                warmup=self.exp.warmup,
                eps=self.config.loss.eps,
            )
        except NoValidObservationsError:
            logger.warning("Mini-batch %s has no valid observations: skipped", batch.staids)
            return {"loss": math.nan, "status": "no_observations", "grad_norm": math.nan}
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            return {"loss": loss_value, "status": "nonfinite_loss", "grad_norm": math.nan}
        loss.backward()
        grad_norm = self._clip_gradients()
        if not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            return {"loss": loss_value, "status": "nonfinite_grad", "grad_norm": grad_norm}
        self.optimizer.step()
        record: dict[str, Any] = {"loss": loss_value, "status": "ok", "grad_norm": grad_norm}
        record.update(self.model.describe(sim.outputs))
        record.update(self._maybe_batch_metrics(sim.daily, observed))
        return record

    def _clip_gradients(self) -> float:
        params = [p for p in self.model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        max_norm = self.exp.grad_clip_norm if self.exp.grad_clip_norm is not None else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm, error_if_nonfinite=False)
        return float(norm)

    def _maybe_batch_metrics(self, daily: torch.Tensor, observed: torch.Tensor) -> dict[str, float]:
        every = self.exp.validation_every
        if every is None or (self.position.global_step + 1) % every:
            return {}
        prediction = daily.detach().cpu().numpy()[self.exp.warmup :].T
        target = observed.cpu().numpy()[self.exp.warmup :].T
        return {f"batch_{k}": v for k, v in batch_metrics(prediction, target).items()}

    def _guard(self, record: dict[str, Any]) -> None:
        """Count non-finite steps; abort after ``max_consecutive_nonfinite`` in a row."""
        if record["status"] in ("nonfinite_loss", "nonfinite_grad"):
            self.position.consecutive_nonfinite += 1
            self.position.total_nonfinite += 1
            logger.warning(
                "Non-finite %s at epoch %d mini-batch %d (loss=%s): step skipped (%d in a row)",
                "loss" if record["status"] == "nonfinite_loss" else "gradient",
                record["epoch"],
                record["mini_batch"],
                record["loss"],
                self.position.consecutive_nonfinite,
            )
            if self.position.consecutive_nonfinite >= self.exp.max_consecutive_nonfinite:
                raise NonFiniteLossError(
                    f"{self.position.consecutive_nonfinite} consecutive mini-batches had a "
                    f"non-finite loss or gradient (last: epoch {record['epoch']}, mini-batch "
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
        metrics = validate(self.model, self.validation, self.features, self.config, self.device)
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

    def _run_epoch(self, epoch: int, start_mb: int, bar: Any) -> bool:
        """Train one epoch from ``start_mb``; return ``True`` when ``max_steps`` stopped it."""
        lr = self._set_learning_rate(epoch)
        self._epoch_start_sampler_state = self.sampler_generator.get_state()
        self.collator.skip(start_mb)
        n_batches = len(self.loader)
        for mb, batch in enumerate(self.loader):
            if batch is None:  # already trained before the checkpoint we resumed from
                continue
            started = time.perf_counter()
            record = self._step(batch)
            record.update(
                epoch=epoch,
                mini_batch=mb,
                step=self.position.global_step,
                lr=lr,
                gauges=",".join(batch.staids),
                window_start=str(batch.dates[0].date()),
                seconds=time.perf_counter() - started,
            )
            self._guard(record)
            self.history.append(record)
            self._log(record)
            bar.update(1)
            bar.set_postfix(epoch=epoch, mb=f"{mb + 1}/{n_batches}", loss=f"{record['loss']:.4g}")
            self.position.global_step += 1
            self._steps_done += 1
            last = mb == n_batches - 1
            if self._due_validation():
                self._validate(self.position.global_step - 1)
            if not last and (mb + 1) % self.exp.checkpoint_every == 0:
                self.save(epoch, mb, epoch_complete=False)
            if self._budget_spent() and not last:
                return True
        # Saved only now: the exhausted sampler may still draw from its generator.
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
        """Train until ``experiment.epochs`` (or ``max_steps``); return model and history."""
        if self.exp.checkpoint:
            self.resume(self.exp.checkpoint)
        self._steps_done = 0
        start_epoch, start_mb = self.position.epoch, self.position.mini_batch
        total = len(self.loader) * max(self.exp.epochs - start_epoch + 1, 0) - start_mb
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
        return TrainingResult(
            model=self.model,
            history=history,
            checkpoints=list(self.checkpoints),
            final_checkpoint=self.checkpoints[-1] if self.checkpoints else self._resumed_from,
            stopped_early=stopped,
            summary=_summary(history, self.position),
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
