"""Attribute and forcing statistics (from training reaches / period only) and z-scoring."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

logger = logging.getLogger(__name__)

STAT_KEYS: tuple[str, ...] = ("mean", "std", "min", "max", "p10", "p90")
Stats = dict[str, dict[str, float]]


def describe(values: np.ndarray, name: str) -> dict[str, float]:
    """NaN-aware ``mean, std, min, max, p10, p90`` of ``values``; error when all are NaN."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        raise ValueError(f"normalisation: {name!r} has no finite value in the selection")
    p10, p90 = np.percentile(flat, [10.0, 90.0])
    return {
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "p10": float(p10),
        "p90": float(p90),
    }


def attribute_statistics(attributes: pd.DataFrame, names: Sequence[str], rows: np.ndarray) -> Stats:
    """Statistics of each attribute column over the selected rows.

    Args:
        attributes: One float column per attribute, one row per reach.
        names: Attribute columns to describe.
        rows: Boolean mask (or positions) of the rows to use (the training reaches).
    """
    missing = [n for n in names if n not in attributes.columns]
    if missing:
        raise KeyError(f"normalisation: attribute column(s) {missing} not in the attributes table")
    selected = attributes.iloc[np.flatnonzero(rows) if rows.dtype == bool else rows]
    return {n: describe(selected[n].to_numpy(dtype=np.float64), n) for n in names}


def forcing_statistics(
    forcings: xr.Dataset,
    names: Sequence[str],
    reach_ids: np.ndarray,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    reach_dim: str = "divide_id",
) -> Stats:
    """Statistics of each forcing over the given reaches and the inclusive ``[start, end]``
    (``{}`` for no forcings)."""
    if not names:
        return {}
    missing = [n for n in names if n not in forcings.data_vars]
    if missing:
        raise KeyError(f"normalisation: forcing variable(s) {missing} not in the forcings store")
    window = forcings[list(names)].sel({reach_dim: reach_ids, "time": slice(start, end)})
    if window.sizes["time"] == 0:
        raise ValueError(f"normalisation: no forcing time step in {start.date()} .. {end.date()}")
    return {n: describe(window[n].to_numpy(), n) for n in names}


def zscore(
    values: np.ndarray, stats: Mapping[str, Mapping[str, float]], names: Sequence[str]
) -> np.ndarray:
    """Z-score ``values`` whose LAST axis follows ``names``; a zero std scales by 1."""
    unknown = [n for n in names if n not in stats]
    if unknown:
        raise KeyError(f"normalisation: no statistics for {unknown}")
    mean = np.array([stats[n]["mean"] for n in names], dtype=np.float64)
    std = np.array([stats[n]["std"] for n in names], dtype=np.float64)
    constant = ~(std > 0)
    if constant.any():
        logger.warning(
            "normalisation: constant %s (std 0): only centred",
            [n for n, c in zip(names, constant, strict=True) if c],
        )
    std = np.where(constant, 1.0, std)
    return (np.asarray(values, dtype=np.float64) - mean) / std
