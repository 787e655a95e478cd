"""Normalisation statistics and z-scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data.normalization import (
    STAT_KEYS,
    attribute_statistics,
    describe,
    forcing_statistics,
    zscore,
)


def test_describe_ignores_nan():
    stats = describe(np.array([1.0, 2.0, np.nan, 3.0, 4.0]), "a")
    assert set(stats) == set(STAT_KEYS)
    assert stats["mean"] == pytest.approx(2.5)
    assert stats["std"] == pytest.approx(np.std([1, 2, 3, 4]))
    assert (stats["min"], stats["max"]) == (1.0, 4.0)
    assert stats["p10"] == pytest.approx(np.percentile([1, 2, 3, 4], 10))


def test_describe_all_nan_fails_naming_the_variable():
    with pytest.raises(ValueError, match="'soil'"):
        describe(np.array([np.nan, np.nan]), "soil")


def test_attribute_statistics_use_selected_rows_only():
    df = pd.DataFrame({"a": [1.0, 2.0, 100.0], "b": [0.0, 1.0, 1.0]})
    stats = attribute_statistics(df, ["a", "b"], np.array([True, True, False]))
    assert stats["a"]["max"] == 2.0
    with pytest.raises(KeyError, match="missing_col"):
        attribute_statistics(df, ["missing_col"], np.array([True, True, True]))


def test_forcing_statistics_use_period_and_reaches_only():
    time = pd.date_range("2000-01-01", periods=4, freq="D")
    values = np.array([[1.0, 2.0, 50.0, 50.0], [99.0, 99.0, 99.0, 99.0]])
    ds = xr.Dataset({"P": (("divide_id", "time"), values)}, coords={"divide_id": [1, 2], "time": time})
    stats = forcing_statistics(ds, ["P"], np.array([1]), time[0], time[1])
    assert stats["P"]["mean"] == pytest.approx(1.5)
    with pytest.raises(KeyError, match="Tmax"):
        forcing_statistics(ds, ["Tmax"], np.array([1]), time[0], time[1])
    with pytest.raises(ValueError, match="no forcing time step"):
        forcing_statistics(ds, ["P"], np.array([1]), pd.Timestamp("2001-01-01"), pd.Timestamp("2001-01-02"))


def test_zscore_last_axis_and_constant_columns(caplog):
    stats = {"a": {"mean": 1.0, "std": 2.0}, "b": {"mean": 5.0, "std": 0.0}}
    out = zscore(np.array([[3.0, 5.0], [1.0, 7.0]]), stats, ["a", "b"])
    np.testing.assert_allclose(out, [[1.0, 0.0], [0.0, 2.0]])
    assert "constant" in caplog.text
    with pytest.raises(KeyError, match="c"):
        zscore(np.zeros((1, 1)), stats, ["c"])
