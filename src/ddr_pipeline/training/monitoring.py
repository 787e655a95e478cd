"""Monitoring callbacks: the trainer reports through a :class:`TrainingMonitor`.

The library never imports Kedro and never calls MLflow directly: the Kedro node injects an
:class:`MlflowMonitor` (which logs into the run kedro-mlflow opened); tests inject a
:class:`RecordingMonitor`; :class:`NullMonitor` ignores everything.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)


class TrainingMonitor(Protocol):
    """What the trainer reports during a run."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Scalar metrics at mini-batch ``step`` (global, 0-based)."""

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """A file produced by the run (checkpoint, history, ...)."""

    def log_model(self, checkpoint: Path, name: str) -> None:
        """The final model (its weights-only checkpoint), for inference."""


class NullMonitor:
    """A monitor that ignores everything."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Ignore metrics."""

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Ignore artifacts."""

    def log_model(self, checkpoint: Path, name: str) -> None:
        """Ignore the model."""


@dataclass
class RecordingMonitor:
    """Keeps everything in lists (tests, notebooks)."""

    metrics: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record metrics."""
        self.metrics.append((step, dict(metrics)))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Record the artifact path."""
        self.artifacts.append((Path(path), artifact_path))

    def log_model(self, checkpoint: Path, name: str) -> None:
        """Record the model name."""
        self.models.append(name)

    def series(self, name: str) -> list[float]:
        """All logged values of metric ``name`` in order."""
        return [m[name] for _, m in self.metrics if name in m]


class MlflowMonitor:
    """Logs into the active MLflow run (kedro-mlflow opens it during ``kedro run``).

    Non-finite metric values are dropped (MLflow rejects NaN in some stores). With
    ``log_checkpoints=False`` checkpoint files are not uploaded (only the final model).
    """

    def __init__(self, log_checkpoints: bool = True) -> None:
        import mlflow

        self._mlflow = mlflow
        self.log_checkpoints = log_checkpoints

    @property
    def run_id(self) -> str | None:
        """Id of the active MLflow run (recorded in every checkpoint), or None."""
        run = self._mlflow.active_run()
        return run.info.run_id if run is not None else None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """``mlflow.log_metrics`` with ``step``; drops NaN/Inf values."""
        finite = {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
        if finite:
            self._mlflow.log_metrics(finite, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """``mlflow.log_artifact`` (checkpoints only when ``log_checkpoints``)."""
        if artifact_path == "checkpoints" and not self.log_checkpoints:
            return
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_model(self, checkpoint: Path, name: str) -> None:
        """Log ``checkpoint`` as the weights-only MLflow model ``name`` (no pickle).

        The model is :mod:`ddr_pipeline.model_store.mlflow_model` (a pyfunc model from code).
        """
        from ddr_pipeline.model_store.mlflow_model import log_trained_model

        log_trained_model(checkpoint, name, model_requirements())


#: Packages the logged model needs at load time (besides ``ddr_pipeline`` itself).
MODEL_REQUIREMENTS = (
    "torch",
    "pykan",
    "numpy",
    "pydantic",
    "scipy",
    "mlflow",
    "pandas",
    "xarray",
    "zarr",
)


def model_requirements() -> list[str]:
    """Pinned requirements of the logged model (skips MLflow's slow inference subprocess)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in MODEL_REQUIREMENTS:
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins
