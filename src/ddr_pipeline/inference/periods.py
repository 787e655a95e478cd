"""Periods of a run and their spin-up: which days are routed, which are kept."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import xarray as xr

from ddr_pipeline.data.containers import ModelInputs

logger = logging.getLogger(__name__)


def resolve_period(
    period: Sequence[Any] | None, default: Sequence[Any] | None, *, missing: str
) -> tuple[str, str]:
    """``(start, end)`` ISO dates of ``period``, else of ``default``; ``ValueError(missing)``."""
    chosen = period or default
    if chosen is None or len(chosen) != 2:
        raise ValueError(missing)
    return str(pd.Timestamp(chosen[0]).date()), str(pd.Timestamp(chosen[1]).date())


def evaluation_period(period: Sequence[Any] | None, model_inputs: xr.Dataset) -> tuple[str, str]:
    """The evaluation period: ``period`` or the inputs' ``test_period`` attribute."""
    return resolve_period(
        period,
        model_inputs.attrs.get("test_period"),
        missing="evaluation.period is not set and the model inputs carry no test_period attribute",
    )


def routing_period(period: Sequence[Any] | None, dates: pd.DatetimeIndex) -> tuple[str, str]:
    """The routing period: ``period`` or every day of ``dates``."""
    return resolve_period(
        period, [dates[0], dates[-1]], missing=f"routing period must be [start, end], got {period}"
    )


@dataclass(frozen=True)
class RoutedDays:
    """Day positions of a run: routing starts at ``route_from``, the period spans ``[start, stop)``."""

    route_from: int
    start: int
    stop: int
    warmup_days: int

    @property
    def days(self) -> slice:
        """All routed days (spin-up included)."""
        return slice(self.route_from, self.stop)

    @property
    def keep(self) -> slice:
        """Rows of a routed ``(days, …)`` array that belong to the period."""
        return slice(self.start - self.route_from, None)

    @property
    def shortfall(self) -> int:
        """Warm-up days missing before the period (the inputs start too late)."""
        return self.warmup_days - (self.start - self.route_from)


def spinup_start(dates: pd.DatetimeIndex, start: str, warmup_days: int) -> tuple[int, int]:
    """Day positions ``(route_from, period_start)``: routing begins ``warmup_days`` earlier.

    When the inputs do not reach back far enough, routing starts on their first day and a
    warning names the shortfall (the caller excludes those days from scoring).
    """
    period_start = int(dates.searchsorted(pd.Timestamp(start)))
    route_from = max(period_start - int(warmup_days), 0)
    if period_start - route_from < warmup_days:
        logger.warning(
            "only %d of %d warm-up days before %s are in the inputs",
            period_start - route_from,
            warmup_days,
            start,
        )
    return route_from, period_start


def routed_days(inputs: ModelInputs, period: tuple[str, str], warmup_days: int) -> RoutedDays:
    """Day positions of ``period`` routed after up to ``warmup_days`` of spin-up."""
    route_from, start = spinup_start(inputs.dates, period[0], warmup_days)
    _, stop = inputs.day_range(*period)
    return RoutedDays(route_from, start, stop, int(warmup_days))
