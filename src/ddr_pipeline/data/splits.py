"""Gauge and period splits: deterministic held-out validation gauges and dated periods."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

logger = logging.getLogger(__name__)

TRAIN = "train"
VALIDATION = "validation"
SPLITS: tuple[str, ...] = (TRAIN, VALIDATION)


@dataclass(frozen=True)
class Period:
    """An inclusive, daily ``[start, end]`` period."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def from_bounds(cls, name: str, bounds: Sequence[str | pd.Timestamp]) -> Period:
        """Build from ``[start, end]``; raise ``ValueError`` naming the period when invalid."""
        if isinstance(bounds, str) or len(bounds) != 2:
            raise ValueError(f"period {name!r} must be [start, end], got {bounds!r}")
        try:
            start, end = (pd.Timestamp(b).normalize() for b in bounds)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"period {name!r} has an invalid date in {bounds!r}: {exc}") from exc
        if end < start:
            raise ValueError(f"period {name!r}: end {end.date()} is before start {start.date()}")
        return cls(name=name, start=start, end=end)

    @property
    def dates(self) -> pd.DatetimeIndex:
        """Every day of the period."""
        return pd.date_range(self.start, self.end, freq="D")

    def as_strings(self) -> list[str]:
        """``[start, end]`` as ISO dates (JSON- and zarr-attribute friendly)."""
        return [self.start.date().isoformat(), self.end.date().isoformat()]


def parse_periods(config: Mapping[str, Sequence[str]]) -> dict[str, Period]:
    """Parse ``{name: [start, end]}``; a ``train`` period is required."""
    if TRAIN not in config:
        raise KeyError(f"periods: a {TRAIN!r} period is required, got {sorted(config)}")
    periods = {name: Period.from_bounds(name, bounds) for name, bounds in config.items()}
    train = periods[TRAIN]
    for period in periods.values():
        if period.name != TRAIN and period.start <= train.end and train.start <= period.end:
            logger.warning(
                "period %r (%s .. %s) overlaps the training period (%s .. %s)",
                period.name,
                *period.as_strings(),
                *train.as_strings(),
            )
    return periods


def covering_dates(periods: Mapping[str, Period]) -> pd.DatetimeIndex:
    """Every day from the earliest period start to the latest period end."""
    start = min(p.start for p in periods.values())
    end = max(p.end for p in periods.values())
    return pd.date_range(start, end, freq="D")


def assign_gauge_splits(
    staids: Sequence[str],
    validation_fraction: float,
    seed: int,
    validation_gauges: Sequence[str] | None = None,
) -> np.ndarray:
    """Label every gauge ``train`` or ``validation``, deterministically.

    With ``validation_gauges`` those STAIDs are held out. Otherwise ``round(fraction * n)``
    gauges are drawn with ``seed`` from the *sorted* STAIDs, so the result does not depend on
    the table order. At least one gauge always stays in training.

    Returns:
        A string array aligned with ``staids``.
    """
    ids = np.asarray([str(s) for s in staids])
    if len(np.unique(ids)) != len(ids):
        raise ValueError("gauge split: duplicate STAIDs")
    if validation_gauges is not None:
        held_out = _explicit_validation(ids, validation_gauges)
    else:
        held_out = _random_validation(ids, validation_fraction, seed)
    if ids.size and held_out.all():
        raise ValueError(
            "gauge split: every gauge is in validation; keep at least one for training"
        )
    labels = np.where(held_out, VALIDATION, TRAIN)
    logger.info(
        "gauge split: %d train, %d validation gauges", int((~held_out).sum()), int(held_out.sum())
    )
    return labels


def _explicit_validation(ids: np.ndarray, validation_gauges: Sequence[str]) -> np.ndarray:
    wanted = np.asarray([str(s) for s in validation_gauges])
    unknown = np.setdiff1d(wanted, ids)
    if unknown.size:
        raise KeyError(f"gauge split: validation gauges not in the gauge table: {unknown.tolist()}")
    return np.isin(ids, wanted)


def _random_validation(ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"gauge split: validation_fraction must be in [0, 1), got {fraction}")
    n_val = round(fraction * ids.size)
    order = np.argsort(ids, kind="stable")
    chosen = np.random.default_rng(seed).permutation(ids.size)[:n_val]
    held_out = np.zeros(ids.size, dtype=bool)
    held_out[order[chosen]] = True
    return held_out


def observed_days(
    streamflow: xr.DataArray, periods: Mapping[str, Period], gauge_dim: str = "gage_id"
) -> dict[str, np.ndarray]:
    """Per period, the number of days with an observation at each gauge (order of ``gauge_dim``)."""
    counts = {}
    for name, period in periods.items():
        window = streamflow.sel(time=slice(period.start, period.end))
        counts[name] = window.notnull().sum(dim="time").transpose(gauge_dim).to_numpy()
    return {name: c.astype(np.int64) for name, c in counts.items()}


def training_reach_mask(
    n_reaches: int, closures: Sequence[np.ndarray], is_train: np.ndarray
) -> np.ndarray:
    """Boolean mask of the reaches upstream of (and including) any training gauge.

    Args:
        n_reaches: Number of reaches in the network.
        closures: Per gauge, the reach indices of its upstream closure.
        is_train: Per gauge, whether it is a training gauge.
    """
    train_closures = [c for c, keep in zip(closures, is_train, strict=True) if keep]
    mask = np.zeros(n_reaches, dtype=bool)
    if train_closures:
        mask[np.concatenate(train_closures)] = True
    if not mask.any():
        raise ValueError("no reach lies upstream of a training gauge: cannot compute statistics")
    return mask
