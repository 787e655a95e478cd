"""The one per-gauge scorer: training's test check and the evaluation pipeline both use it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ddr_pipeline.config.pipelines import WELL_OBSERVED_FRACTION
from ddr_pipeline.evaluation import metrics


def score_gauges(
    predicted: np.ndarray,
    observed: np.ndarray,
    staids: Sequence[str],
    splits: Sequence[str] | None = None,
    well_observed_fraction: float = WELL_OBSERVED_FRACTION,
    *,
    metrics_to_score: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-gauge metrics of ``(gauges, days)`` predictions against observations.

    Columns: ``gage_id``, ``split`` (``"None"`` when not given), ``observed`` (any valid day),
    ``well_observed`` (valid-day share >= ``well_observed_fraction``), ``n_valid``, ``n_days``
    and every metric of :data:`ddr_pipeline.evaluation.metrics.METRICS` (or of
    ``metrics_to_score``).
    """
    if not 0.0 <= well_observed_fraction <= 1.0:
        raise ValueError(f"well_observed_fraction must be in [0, 1], got {well_observed_fraction}")
    table = metrics.metrics_table(predicted, observed, staids, metrics_to_score)
    valid = np.isfinite(np.atleast_2d(observed))
    table.insert(0, "well_observed", valid.mean(axis=1) >= well_observed_fraction)
    table.insert(0, "observed", valid.any(axis=1))
    split_values = ["None"] * len(staids) if splits is None else [str(s) for s in splits]
    table.insert(0, "split", np.asarray(split_values, dtype=object).astype(str))
    return table.reset_index()


def medians(table: pd.DataFrame, names: Sequence[str] = ("nse", "kge")) -> dict[str, float]:
    """``{"<metric>_median"}`` over the rows of a per-gauge table (finite values; NaN if none)."""
    summary: dict[str, float] = {}
    for metric in names:
        values = table[metric].to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        summary[f"{metric}_median"] = float(np.median(values[finite])) if finite.any() else np.nan
    return summary


def median_scores(
    predicted: np.ndarray, observed: np.ndarray, names: Sequence[str] = ("nse", "kge", "rmse")
) -> dict[str, float]:
    """``{"<metric>_median"}`` over every gauge of ``(gauges, days)`` arrays (training's batch
    and validation scores)."""
    staids = [str(g) for g in range(np.atleast_2d(predicted).shape[0])]
    return medians(score_gauges(predicted, observed, staids, metrics_to_score=names), names)


def well_observed_medians(
    table: pd.DataFrame, names: Sequence[str] = ("nse", "kge")
) -> dict[str, float]:
    """``{"<subset>_gauges", "<subset>_<metric>_median"}`` over well-observed gauges, all and
    per split (NaN when a subset has no finite value)."""
    well = table[table["well_observed"]]
    summary: dict[str, float] = {}
    subsets = [("all", well), *((s, well[well["split"] == s]) for s in sorted(set(well["split"])))]
    for label, subset in subsets:
        summary[f"{label}_gauges"] = float(len(subset))
        summary.update({f"{label}_{k}": v for k, v in medians(subset, names).items()})
    return summary
