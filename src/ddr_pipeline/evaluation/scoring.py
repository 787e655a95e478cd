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
) -> pd.DataFrame:
    """Per-gauge metrics of ``(gauges, days)`` predictions against observations.

    Columns: ``gage_id``, ``split`` (``"None"`` when not given), ``observed`` (any valid day),
    ``well_observed`` (valid-day share >= ``well_observed_fraction``), ``n_valid``, ``n_days``
    and every metric of :data:`ddr_pipeline.evaluation.metrics.METRICS`.
    """
    if not 0.0 <= well_observed_fraction <= 1.0:
        raise ValueError(f"well_observed_fraction must be in [0, 1], got {well_observed_fraction}")
    table = metrics.metrics_table(predicted, observed, staids)
    valid = np.isfinite(np.atleast_2d(observed))
    table.insert(0, "well_observed", valid.mean(axis=1) >= well_observed_fraction)
    table.insert(0, "observed", valid.any(axis=1))
    split_values = ["None"] * len(staids) if splits is None else [str(s) for s in splits]
    table.insert(0, "split", np.asarray(split_values, dtype=object).astype(str))
    return table.reset_index()


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
        for metric in names:
            values = subset[metric].to_numpy(dtype=np.float64)
            finite = np.isfinite(values)
            summary[f"{label}_{metric}_median"] = (
                float(np.median(values[finite])) if finite.any() else float("nan")
            )
    return summary
