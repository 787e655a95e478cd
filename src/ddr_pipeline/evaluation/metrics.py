"""Goodness-of-fit metrics for daily discharge, vectorised over gauges.

Every function takes predictions ``p`` and observations ``o`` of shape ``(n_gauges, n_days)``
(a 1-D series is treated as one gauge) and returns one value per gauge. Only the days where
**both** ``p`` and ``o`` are finite enter a gauge's score; a gauge with fewer valid days than
a metric needs (2 for variances and correlations, 1 otherwise) scores NaN, as does a metric
whose denominator is zero (e.g. NSE of a constant observed series). Formulas are documented
per function and in ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

FloatArray = np.ndarray

#: Flow-duration segments (fractions of the valid days, sorted by magnitude).
HIGH_FLOW_FRACTION = 0.02
LOW_FLOW_FRACTION = 0.30
#: Number of points sampled from each flow-duration curve for ``fdc_rmse``.
FDC_POINTS = 100


def _prepare(p: np.ndarray, o: np.ndarray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return float64 2-D copies of ``p`` and ``o`` (NaN outside the joint mask) and the mask."""
    p2 = np.atleast_2d(np.asarray(p, dtype=np.float64))
    o2 = np.atleast_2d(np.asarray(o, dtype=np.float64))
    if p2.shape != o2.shape:
        raise ValueError(f"predictions {p2.shape} and observations {o2.shape} differ in shape")
    mask = np.isfinite(p2) & np.isfinite(o2)
    return np.where(mask, p2, np.nan), np.where(mask, o2, np.nan), mask


def _count(mask: np.ndarray) -> FloatArray:
    return mask.sum(axis=1).astype(np.float64)


def _nanmean(x: np.ndarray, mask: np.ndarray) -> FloatArray:
    n = _count(mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(mask, x, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)


def _safe_div(num: np.ndarray, den: np.ndarray) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def _require(values: np.ndarray, mask: np.ndarray, minimum: int) -> FloatArray:
    return np.where(_count(mask) >= minimum, values, np.nan)


def _moments(p: np.ndarray, o: np.ndarray, mask: np.ndarray) -> dict[str, FloatArray]:
    """Means, population standard deviations and Pearson r over the valid days."""
    mp, mo = _nanmean(p, mask), _nanmean(o, mask)
    dp = np.where(mask, p - mp[:, None], 0.0)
    do = np.where(mask, o - mo[:, None], 0.0)
    n = np.maximum(_count(mask), 1)
    sp = np.sqrt((dp**2).sum(axis=1) / n)
    so = np.sqrt((do**2).sum(axis=1) / n)
    r = _safe_div((dp * do).sum(axis=1) / n, sp * so)
    return {"mp": mp, "mo": mo, "sp": sp, "so": so, "r": _require(r, mask, 2)}


def nse(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Nash-Sutcliffe efficiency ``1 - Σ(o-p)² / Σ(o-ō)²`` (NaN when ``o`` is constant)."""
    p, o, mask = _prepare(p, o)
    mo = _nanmean(o, mask)
    sse = np.where(mask, (o - p) ** 2, 0.0).sum(axis=1)
    sst = np.where(mask, (o - mo[:, None]) ** 2, 0.0).sum(axis=1)
    return _require(1.0 - _safe_div(sse, sst), mask, 2)


def kge(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Kling-Gupta efficiency (Gupta et al. 2009): ``1 - √((r-1)² + (α-1)² + (β-1)²)``.

    ``r`` Pearson correlation, ``α = σp/σo`` (population standard deviations), ``β = μp/μo``.
    """
    p, o, mask = _prepare(p, o)
    m = _moments(p, o, mask)
    alpha = _safe_div(m["sp"], m["so"])
    beta = _safe_div(m["mp"], m["mo"])
    return 1.0 - np.sqrt((m["r"] - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2)


def kge_prime(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Modified KGE′ (Kling et al. 2012): variability term ``γ = (σp/μp) / (σo/μo)``."""
    p, o, mask = _prepare(p, o)
    m = _moments(p, o, mask)
    gamma = _safe_div(_safe_div(m["sp"], m["mp"]), _safe_div(m["so"], m["mo"]))
    beta = _safe_div(m["mp"], m["mo"])
    return 1.0 - np.sqrt((m["r"] - 1) ** 2 + (gamma - 1) ** 2 + (beta - 1) ** 2)


def rmse(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Root mean squared error ``√mean((p-o)²)`` (m³/s)."""
    p, o, mask = _prepare(p, o)
    return np.sqrt(_nanmean((p - o) ** 2, mask))


def mae(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Mean absolute error ``mean(|p-o|)`` (m³/s)."""
    p, o, mask = _prepare(p, o)
    return _nanmean(np.abs(p - o), mask)


def bias(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Mean error ``mean(p-o)`` (m³/s); positive = over-prediction."""
    p, o, mask = _prepare(p, o)
    return _nanmean(p - o, mask)


def pbias(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Percent bias ``100·Σ(p-o)/Σo`` (%)."""
    p, o, mask = _prepare(p, o)
    num = np.where(mask, p - o, 0.0).sum(axis=1)
    den = np.where(mask, o, 0.0).sum(axis=1)
    return _require(100.0 * _safe_div(num, den), mask, 1)


def ub_rmse(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Unbiased RMSE: RMSE of the anomalies ``(p - p̄) - (o - ō)`` (m³/s)."""
    p, o, mask = _prepare(p, o)
    anomaly = (p - _nanmean(p, mask)[:, None]) - (o - _nanmean(o, mask)[:, None])
    return np.sqrt(_nanmean(anomaly**2, mask))


def pearson_r(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Pearson correlation coefficient over the valid days."""
    p, o, mask = _prepare(p, o)
    return _moments(p, o, mask)["r"]


def spearman_rho(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Spearman rank correlation: Pearson r of the ranks (ties get average ranks)."""
    p, o, mask = _prepare(p, o)
    rp = rankdata(p, axis=1, nan_policy="omit")
    ro = rankdata(o, axis=1, nan_policy="omit")
    return _moments(rp, ro, mask)["r"]


def _sorted_valid(x: np.ndarray, mask: np.ndarray) -> FloatArray:
    """Sort the valid values of each row ascending; the invalid tail (``j ≥ n``) is set to 0."""
    ordered = np.sort(np.where(mask, x, np.inf), axis=1)
    tail = np.arange(x.shape[1])[None, :] >= mask.sum(axis=1)[:, None]
    return np.where(tail, 0.0, ordered)


def _segment_masks(mask: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks of the low/mid/high segments of ascending-sorted valid values.

    With ``n`` valid days and rank ``j`` (0 = smallest): low ``j < ⌊0.3n + ½⌋``, high
    ``⌊0.98n + ½⌋ ≤ j < n``, mid = the rest.
    """
    n = mask.sum(axis=1)[:, None]
    j = np.arange(mask.shape[1])[None, :]
    low_end = np.floor(LOW_FLOW_FRACTION * n + 0.5)
    high_start = np.floor((1.0 - HIGH_FLOW_FRACTION) * n + 0.5)
    valid = j < n
    low = valid & (j < low_end)
    high = valid & (j >= high_start)
    return {"low": low, "mid": valid & ~low & ~high, "high": high}


def _segment_pbias(p: np.ndarray, o: np.ndarray, segment: str) -> FloatArray:
    p, o, mask = _prepare(p, o)
    ps, os_ = _sorted_valid(p, mask), _sorted_valid(o, mask)
    seg = _segment_masks(mask)[segment]
    num = np.where(seg, ps - os_, 0.0).sum(axis=1)
    den = np.where(seg, os_, 0.0).sum(axis=1)
    return np.where(seg.any(axis=1), 100.0 * _safe_div(num, den), np.nan)


def _segment_rmse(p: np.ndarray, o: np.ndarray, segment: str) -> FloatArray:
    p, o, mask = _prepare(p, o)
    ps, os_ = _sorted_valid(p, mask), _sorted_valid(o, mask)
    seg = _segment_masks(mask)[segment]
    return np.sqrt(_nanmean(np.where(seg, ps - os_, 0.0) ** 2, seg))


def fhv(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """High-flow volume bias: percent bias of the top 2 % of the (independently) sorted flows."""
    return _segment_pbias(p, o, "high")


def flv(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Low-flow volume bias: percent bias of the lowest 30 % of the sorted flows.

    A plain percent bias of the segment (as DDR), not Yilmaz et al.'s log-space FLV.
    """
    return _segment_pbias(p, o, "low")


def pbias_mid(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """Percent bias of the mid segment (30 %-98 %) of the sorted flows."""
    return _segment_pbias(p, o, "mid")


def rmse_low(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """RMSE between the lowest 30 % of the sorted predicted and observed flows."""
    return _segment_rmse(p, o, "low")


def rmse_mid(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """RMSE between the mid segments (30 %-98 %) of the sorted flows."""
    return _segment_rmse(p, o, "mid")


def rmse_high(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """RMSE between the top 2 % of the sorted flows."""
    return _segment_rmse(p, o, "high")


def fdc_rmse(p: np.ndarray, o: np.ndarray) -> FloatArray:
    """RMSE between flow-duration curves sampled at 100 exceedance points.

    Valid values are sorted in descending order and sampled at indices ``⌊k·n/100⌋``,
    ``k = 0..99``; a gauge needs at least one valid day.
    """
    p, o, mask = _prepare(p, o)
    n = mask.sum(axis=1)
    idx = (np.arange(FDC_POINTS)[None, :] * n[:, None]) // FDC_POINTS
    idx = np.minimum(idx, np.maximum(n[:, None] - 1, 0))
    dp = np.take_along_axis(-_sorted_valid(-p, mask), idx, axis=1)
    do = np.take_along_axis(-_sorted_valid(-o, mask), idx, axis=1)
    with np.errstate(invalid="ignore"):
        out = np.sqrt(np.mean((dp - do) ** 2, axis=1))
    return np.where(n > 0, out, np.nan)


MetricFunction = Callable[[np.ndarray, np.ndarray], FloatArray]

#: All metrics by column name, in report order.
METRICS: dict[str, MetricFunction] = {
    "nse": nse,
    "kge": kge,
    "kge_prime": kge_prime,
    "rmse": rmse,
    "mae": mae,
    "bias": bias,
    "pbias": pbias,
    "ub_rmse": ub_rmse,
    "fdc_rmse": fdc_rmse,
    "pearson_r": pearson_r,
    "spearman_rho": spearman_rho,
    "fhv": fhv,
    "flv": flv,
    "pbias_mid": pbias_mid,
    "rmse_low": rmse_low,
    "rmse_mid": rmse_mid,
    "rmse_high": rmse_high,
}


def valid_days(p: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Number of days per gauge where both prediction and observation are finite."""
    return _prepare(p, o)[2].sum(axis=1)


def metrics_table(
    p: np.ndarray,
    o: np.ndarray,
    gage_ids: Sequence[str],
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-gauge metrics as a DataFrame indexed by ``gage_id``.

    Columns: ``n_valid`` (days scored), ``n_days`` (days in the period) and one column per metric
    (all of :data:`METRICS` unless ``metrics`` names a subset).
    """
    names = list(METRICS) if metrics is None else list(metrics)
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise KeyError(f"unknown metrics {unknown}; available: {sorted(METRICS)}")
    p2, o2 = np.atleast_2d(p), np.atleast_2d(o)
    if p2.shape[0] != len(gage_ids):
        raise ValueError(f"{p2.shape[0]} prediction rows for {len(gage_ids)} gage ids")
    data: dict[str, np.ndarray] = {
        "n_valid": valid_days(p2, o2).astype(np.int64),
        "n_days": np.full(p2.shape[0], p2.shape[1], dtype=np.int64),
    }
    data.update({name: METRICS[name](p2, o2) for name in names})
    index = pd.Index(np.asarray(gage_ids, dtype=str), name="gage_id", dtype="str")
    return pd.DataFrame(data, index=index)


def summarize(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Median, mean, q25, q75 and the count of finite values of each metric column.

    Infinite values are treated as missing. Returns a DataFrame indexed by metric name.
    """
    names = [c for c in (metrics or list(METRICS)) if c in table.columns]
    values = table[names].astype(np.float64).replace([np.inf, -np.inf], np.nan)
    return pd.DataFrame(
        {
            "median": values.median(),
            "mean": values.mean(),
            "q25": values.quantile(0.25),
            "q75": values.quantile(0.75),
            "count": values.notna().sum().astype(np.int64),
        }
    ).rename_axis("metric")
