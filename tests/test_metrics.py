"""Tests for ddr_pipeline.evaluation.metrics: known values, NaN handling, vectorisation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from ddr_pipeline.evaluation import metrics as m


@pytest.fixture
def series() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    o = rng.gamma(2.0, 10.0, size=(4, 200))
    p = 0.8 * o + rng.normal(0.0, 3.0, size=o.shape) + 2.0
    p[0, :15] = np.nan
    o[2, 100:160] = np.nan
    return p, o


def test_perfect_prediction_scores_ideal_values() -> None:
    o = np.random.default_rng(1).permutation(np.arange(1.0, 51.0))[None, :]
    table = m.metrics_table(o.copy(), o, ["g"])
    row = table.loc["g"]
    for name in ("nse", "kge", "kge_prime", "pearson_r", "spearman_rho"):
        assert row[name] == pytest.approx(1.0)
    for name in ("rmse", "mae", "bias", "pbias", "ub_rmse", "fdc_rmse", "fhv", "flv"):
        assert row[name] == pytest.approx(0.0, abs=1e-12)


def test_constant_mean_prediction_has_zero_nse() -> None:
    o = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    p = np.full_like(o, o.mean())
    assert m.nse(p, o)[0] == pytest.approx(0.0)
    # constant prediction: zero variance -> correlation undefined -> KGE NaN
    assert math.isnan(m.kge(p, o)[0])


def test_hand_computed_values() -> None:
    o = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([2.0, 2.0, 4.0, 4.0])
    # errors 1, 0, 1, 0
    assert m.rmse(p, o)[0] == pytest.approx(math.sqrt(0.5))
    assert m.mae(p, o)[0] == pytest.approx(0.5)
    assert m.bias(p, o)[0] == pytest.approx(0.5)
    assert m.pbias(p, o)[0] == pytest.approx(100 * 2 / 10)
    assert m.nse(p, o)[0] == pytest.approx(1 - 2 / 5)
    # ub_rmse: anomalies p - 3 = [-1,-1,1,1], o - 2.5 = [-1.5,-.5,.5,1.5] -> diffs [.5,-.5,.5,-.5]
    assert m.ub_rmse(p, o)[0] == pytest.approx(0.5)
    r = pearsonr(p, o).statistic
    alpha = p.std() / o.std()
    beta = p.mean() / o.mean()
    assert m.kge(p, o)[0] == pytest.approx(
        1 - math.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2)
    )
    gamma = (p.std() / p.mean()) / (o.std() / o.mean())
    assert m.kge_prime(p, o)[0] == pytest.approx(
        1 - math.sqrt((r - 1) ** 2 + (gamma - 1) ** 2 + (beta - 1) ** 2)
    )


def test_flow_duration_segments_hand_computed() -> None:
    o = np.arange(1.0, 101.0)  # 100 days: low = 30 smallest, high = 2 largest
    p = o.copy()
    p[o > 98] *= 1.5  # over-predict the two largest
    p[o <= 30] *= 0.5  # under-predict the 30 smallest
    assert m.fhv(p, o)[0] == pytest.approx(50.0)
    assert m.flv(p, o)[0] == pytest.approx(-50.0)
    assert m.pbias_mid(p, o)[0] == pytest.approx(0.0)
    assert m.rmse_mid(p, o)[0] == pytest.approx(0.0)
    assert m.rmse_high(p, o)[0] == pytest.approx(math.sqrt((49.5**2 + 50**2) / 2))
    assert m.rmse_low(p, o)[0] == pytest.approx(math.sqrt(np.mean((0.5 * np.arange(1, 31)) ** 2)))


def test_fdc_rmse_ignores_timing() -> None:
    o = np.arange(1.0, 51.0)
    shuffled = np.random.default_rng(0).permutation(o)
    assert m.fdc_rmse(shuffled, o)[0] == pytest.approx(0.0)
    assert m.nse(shuffled, o)[0] < 0.5


def test_matches_row_by_row_reference_with_nans(series: tuple[np.ndarray, np.ndarray]) -> None:
    p, o = series
    table = m.metrics_table(p, o, ["a", "b", "c", "d"])
    for i, gid in enumerate(table.index):
        mask = np.isfinite(p[i]) & np.isfinite(o[i])
        pi, oi = p[i, mask], o[i, mask]
        assert table.loc[gid, "n_valid"] == mask.sum()
        assert table.loc[gid, "nse"] == pytest.approx(
            1 - np.sum((oi - pi) ** 2) / np.sum((oi - oi.mean()) ** 2)
        )
        assert table.loc[gid, "pearson_r"] == pytest.approx(pearsonr(pi, oi).statistic)
        assert table.loc[gid, "spearman_rho"] == pytest.approx(spearmanr(pi, oi).statistic)
        assert table.loc[gid, "rmse"] == pytest.approx(np.sqrt(np.mean((pi - oi) ** 2)))
        # vectorised result equals the single-gauge call
        assert table.loc[gid, "kge"] == pytest.approx(m.kge(pi, oi)[0])
        assert table.loc[gid, "fhv"] == pytest.approx(m.fhv(pi, oi)[0])


def test_nan_prediction_days_are_excluded_not_propagated() -> None:
    o = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    p = np.array([np.nan, 2.0, 3.0, 4.0, 5.0])
    assert m.nse(p, o)[0] == pytest.approx(1.0)
    assert m.valid_days(p, o)[0] == 4


def test_too_few_valid_days_give_nan() -> None:
    o = np.array([[1.0, np.nan, np.nan], [np.nan, np.nan, np.nan]])
    p = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    for func in (m.nse, m.kge, m.pearson_r):
        assert np.isnan(func(p, o)).all()
    assert m.rmse(p, o)[0] == 0.0
    assert np.isnan(m.rmse(p, o)[1])
    assert np.isnan(m.fdc_rmse(p, o)[1])


def test_short_series_has_empty_high_segment() -> None:
    o = np.arange(1.0, 6.0)  # 5 days: top 2 % rounds to zero days
    assert np.isnan(m.fhv(o, o)[0])
    assert m.flv(o, o)[0] == pytest.approx(0.0)


def test_constant_observations_give_nan_nse() -> None:
    assert np.isnan(m.nse(np.array([1.0, 2.0]), np.array([3.0, 3.0]))[0])


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shape"):
        m.nse(np.zeros((2, 3)), np.zeros((2, 4)))


def test_unknown_metric_is_named() -> None:
    with pytest.raises(KeyError, match="nash"):
        m.metrics_table(np.ones((1, 3)), np.ones((1, 3)), ["g"], metrics=["nash"])


def test_summary_statistics(series: tuple[np.ndarray, np.ndarray]) -> None:
    p, o = series
    table = m.metrics_table(p, o, ["a", "b", "c", "d"])
    table.loc["d", "nse"] = -np.inf
    summary = m.summarize(table)
    assert summary.loc["nse", "count"] == 3
    finite = table["nse"].iloc[:3]
    assert summary.loc["nse", "median"] == pytest.approx(finite.median())
    assert summary.loc["nse", "q25"] == pytest.approx(finite.quantile(0.25))
    assert list(summary.columns) == ["median", "mean", "q25", "q75", "count"]
    assert isinstance(summary, pd.DataFrame)
