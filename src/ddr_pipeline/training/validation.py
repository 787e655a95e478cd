"""Validation during training: held-out gauges routed over one window, median NSE/KGE/RMSE."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.evaluation.scoring import median_scores
from ddr_pipeline.models import RoutingModel
from ddr_pipeline.simulation import FeatureIndex, RoutingSettings, simulate
from ddr_pipeline.simulation.batches import RoutingBatch, build_batch


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
    settings: RoutingSettings,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Daily predictions ``(days, gauges)`` of ``batch`` in eval mode (no dropout, no grad)."""
    was_training = model.training
    model.eval()
    try:
        sim = simulate(model, batch.to(device), features, settings)
    finally:
        model.train(was_training)
    return sim.daily.cpu().numpy()


def validate(
    model: RoutingModel,
    spec: ValidationSpec,
    features: FeatureIndex,
    settings: RoutingSettings,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Median NSE/KGE/RMSE of the validation gauges, keys ``<prefix>_nse_median`` ..."""
    batch = spec.batch()
    prediction = predict(model, batch, features, settings, device)[spec.warmup :].T
    observation = batch.observations.numpy()[spec.warmup :].T
    return {f"{spec.prefix}_{k}": v for k, v in median_scores(prediction, observation).items()}
