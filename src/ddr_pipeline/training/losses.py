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


def _pooled(errors: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (errors * mask).sum(), mask.sum()


def _nse(
    prediction: torch.Tensor, observation: torch.Tensor, mask: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    counts = mask.sum(dim=0)
    keep = counts >= 2
    means = (observation * mask).sum(dim=0) / counts.clamp(min=1)
    error = (((prediction - observation) ** 2) * mask).sum(dim=0)
    variance = (((observation - means) ** 2) * mask).sum(dim=0)
    return (error[keep] / (variance[keep] + eps)).sum(), keep.sum().to(prediction.dtype)


def routing_loss_terms(
    prediction: torch.Tensor,
    observation: torch.Tensor,
    name: LossName = "mse",
    *,
    warmup: int = 0,
    eps: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss as ``(numerator, count)``: ``loss = numerator / count``.

    ``count`` is the number of valid (day, gauge) pairs (``mse``/``mae``) or of gauges with at
    least two valid days (``nse``); it may be 0. Summing both terms over disjoint gauge sets and
    dividing gives the loss of their union, which is how data-parallel ranks share one loss.
    """
    prediction, observation, mask = _prepare(prediction, observation, warmup)
    if name == "mse":
        return _pooled((prediction - observation) ** 2, mask)
    if name == "mae":
        return _pooled((prediction - observation).abs(), mask)
    if name == "nse":
        return _nse(prediction, observation, mask, eps)
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSS_NAMES}")


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
    numerator, count = routing_loss_terms(prediction, observation, name, warmup=warmup, eps=eps)
    if count == 0:
        raise NoValidObservationsError(
            "no gauge has two valid observations after warm-up"
            if name == "nse"
            else "no valid observation after warm-up in this batch"
        )
    return numerator / count
