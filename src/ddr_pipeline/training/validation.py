"""Validation during training and a per-gauge evaluation routine (NSE, KGE, RMSE).

:func:`evaluate_period` routes a set of gauges over a period with a warm-up before it (e.g. a
month of late 1979 before 1980) and scores each gauge on the scored days only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ddr_pipeline import metrics
from ddr_pipeline.config import TrainingConfig
from ddr_pipeline.data.batching import GaugeSet, ModelInputs, RoutingBatch, build_batch
from ddr_pipeline.models import RoutingModel
from ddr_pipeline.training.forward import FeatureIndex, simulate


def batch_metrics(prediction: np.ndarray, observation: np.ndarray) -> dict[str, float]:
    """Median NSE, KGE and RMSE over gauges of ``(gauges, days)`` arrays (NaN-aware)."""
    scores = {
        "nse": metrics.nse(prediction, observation),
        "kge": metrics.kge(prediction, observation),
        "rmse": metrics.rmse(prediction, observation),
    }
    return {
        f"{name}_median": float(np.nanmedian(values)) if np.isfinite(values).any() else np.nan
        for name, values in scores.items()
    }


@dataclass
class ValidationSpec:
    """Held-out gauges routed over ``[start, stop)`` day positions; scored after ``warmup`` days."""

    inputs: ModelInputs
    gauges: GaugeSet
    start: int
    stop: int
    warmup: int
    prefix: str = "val"
    _batch: RoutingBatch | None = field(default=None, repr=False)

    def batch(self) -> RoutingBatch:
        """The (cached) routing problem of all validation gauges over the window."""
        if self._batch is None:
            positions = list(range(len(self.gauges)))
            self._batch = build_batch(self.inputs, self.gauges, positions, self.start, self.stop)
        return self._batch


@torch.no_grad()
def predict(
    model: RoutingModel,
    batch: RoutingBatch,
    features: FeatureIndex,
    config: TrainingConfig,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Daily predictions ``(days, gauges)`` of ``batch`` in eval mode (no dropout, no grad)."""
    was_training = model.training
    model.eval()
    try:
        sim = simulate(model, batch.to(device), features, config)
    finally:
        model.train(was_training)
    return sim.daily.cpu().numpy()


def validate(
    model: RoutingModel,
    spec: ValidationSpec,
    features: FeatureIndex,
    config: TrainingConfig,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Median NSE/KGE/RMSE of the validation gauges, keys ``<prefix>_nse_median`` ..."""
    batch = spec.batch()
    prediction = predict(model, batch, features, config, device)[spec.warmup :].T
    observation = batch.observations.numpy()[spec.warmup :].T
    return {f"{spec.prefix}_{k}": v for k, v in batch_metrics(prediction, observation).items()}


def evaluate_period(
    model: RoutingModel,
    inputs: ModelInputs,
    gauges: GaugeSet,
    config: TrainingConfig,
    period: tuple[str, str],
    *,
    warmup_days: int,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Per-gauge NSE, KGE, RMSE and valid-day fraction over ``period`` (inclusive dates).

    The routing starts ``warmup_days`` before ``period[0]`` (hot start there); those days are
    not scored.
    """
    first, stop = inputs.day_range(*period)
    start = max(first - warmup_days, 0)
    features = FeatureIndex.from_names(config, inputs.attribute_names, inputs.forcing_names)
    batch = build_batch(inputs, gauges, list(range(len(gauges))), start, stop)
    prediction = predict(model, batch, features, config, device)[first - start :].T
    observation = batch.observations.numpy()[first - start :].T
    return pd.DataFrame(
        {
            "STAID": list(gauges.staids),
            "nse": metrics.nse(prediction, observation),
            "kge": metrics.kge(prediction, observation),
            "rmse": metrics.rmse(prediction, observation),
            "valid_fraction": np.isfinite(observation).mean(axis=1),
        }
    )
