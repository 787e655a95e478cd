"""Losses on daily discharge ``(days, gauges)`` after warm-up, with missing observations masked.

Missing observations (NaN) are masked day by day: a gauge keeps its valid days. ``mse``/``mae``
average over all valid (day, gauge) pairs; ``nse`` is ``sum (p - o)^2 / (sum (o - mean o)^2 +
eps)`` per gauge (= 1 - NSE for eps -> 0), averaged over gauges with at least two valid days.
"""

from __future__ import annotations

from typing import Literal

import torch

LossName = Literal["mse", "mae", "nse"]
LOSS_NAMES: tuple[str, ...] = ("mse", "mae", "nse")


class NoValidObservationsError(ValueError):
    """No observation left after warm-up and masking: the loss is undefined for this batch."""


def _prepare(
    prediction: torch.Tensor, observation: torch.Tensor, warmup: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check shapes, drop warm-up days; return prediction, NaN-free observation, validity mask."""
    if prediction.ndim != 2 or prediction.shape != observation.shape:
        raise ValueError(
            "loss expects prediction and observation of the same shape (days, gauges), got "
            f"prediction {tuple(prediction.shape)} and observation {tuple(observation.shape)}"
        )
    if warmup < 0 or warmup >= prediction.shape[0]:
        raise ValueError(f"warmup must be in [0, days) = [0, {prediction.shape[0]}), got {warmup}")
    prediction = prediction[warmup:]
    observation = observation[warmup:].to(prediction)
    valid = torch.isfinite(observation)
    # Fill gaps before any arithmetic so that masked entries carry no NaN into the gradient.
    filled = torch.where(valid, observation, torch.zeros_like(observation))
    return prediction, filled, valid.to(prediction.dtype)


def _pooled(errors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    count = mask.sum()
    if count == 0:
        raise NoValidObservationsError("no valid observation after warm-up in this batch")
    return (errors * mask).sum() / count


def _nse(
    prediction: torch.Tensor, observation: torch.Tensor, mask: torch.Tensor, eps: float
) -> torch.Tensor:
    counts = mask.sum(dim=0)
    keep = counts >= 2
    if not bool(keep.any()):
        raise NoValidObservationsError("no gauge has two valid observations after warm-up")
    means = (observation * mask).sum(dim=0) / counts.clamp(min=1)
    error = (((prediction - observation) ** 2) * mask).sum(dim=0)
    variance = (((observation - means) ** 2) * mask).sum(dim=0)
    return (error[keep] / (variance[keep] + eps)).mean()


def routing_loss(
    prediction: torch.Tensor,
    observation: torch.Tensor,
    name: LossName = "mse",
    *,
    warmup: int = 0,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Scalar loss of daily ``prediction`` vs ``observation`` (both ``(days, gauges)``, m3/s).

    The first ``warmup`` days are excluded. Raises ``NoValidObservationsError`` when nothing
    valid is left and ``ValueError`` on bad shapes or names.
    """
    prediction, observation, mask = _prepare(prediction, observation, warmup)
    if name == "mse":
        return _pooled((prediction - observation) ** 2, mask)
    if name == "mae":
        return _pooled((prediction - observation).abs(), mask)
    if name == "nse":
        return _nse(prediction, observation, mask, eps)
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSS_NAMES}")
