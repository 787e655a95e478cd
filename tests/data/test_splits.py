"""Gauge and period splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data.splits import (
    Period,
    assign_gauge_splits,
    covering_dates,
    observed_days,
    parse_periods,
    training_reach_mask,
)

STAIDS = [f"{i:08d}" for i in range(1, 21)]


def test_period_parsing_and_dates():
    period = Period.from_bounds("train", ["1979-01-01", "1979-12-31"])
    assert period.dates.size == 365
    assert period.as_strings() == ["1979-01-01", "1979-12-31"]


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        (["1980-01-02", "1980-01-01"], "before start"),
        (["1980-01-01"], r"\[start, end\]"),
        ("1980-01-01", r"\[start, end\]"),
        (["1980-01-01", "not a date"], "invalid date"),
    ],
)
def test_bad_periods_fail_naming_the_period(bounds, message):
    with pytest.raises(ValueError, match=f"'test'.*{message}|{message}"):
        Period.from_bounds("test", bounds)


def test_parse_periods_requires_train_and_warns_on_overlap(caplog):
    with pytest.raises(KeyError, match="train"):
        parse_periods({"test": ["1980-01-01", "1980-12-31"]})
    periods = parse_periods({"train": ["1979-01-01", "1979-12-31"], "test": ["1979-06-01", "1980-12-31"]})
    assert "overlaps the training period" in caplog.text
    dates = covering_dates(periods)
    assert dates[0] == pd.Timestamp("1979-01-01") and dates[-1] == pd.Timestamp("1980-12-31")


def test_random_split_is_deterministic_and_order_independent():
    labels = assign_gauge_splits(STAIDS, validation_fraction=0.2, seed=3)
    assert (labels == "validation").sum() == 4
    np.testing.assert_array_equal(labels, assign_gauge_splits(STAIDS, 0.2, 3))
    reversed_labels = assign_gauge_splits(STAIDS[::-1], 0.2, 3)
    np.testing.assert_array_equal(labels, reversed_labels[::-1])
    assert not np.array_equal(labels, assign_gauge_splits(STAIDS, 0.2, 4))


def test_explicit_validation_gauges():
    labels = assign_gauge_splits(STAIDS, 0.5, 0, validation_gauges=[STAIDS[0], STAIDS[5]])
    assert np.flatnonzero(labels == "validation").tolist() == [0, 5]
    with pytest.raises(KeyError, match="99999999"):
        assign_gauge_splits(STAIDS, 0.5, 0, validation_gauges=["99999999"])
    with pytest.raises(ValueError, match="at least one"):
        assign_gauge_splits(STAIDS[:2], 0.5, 0, validation_gauges=STAIDS[:2])


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_bad_fraction_fails(fraction):
    with pytest.raises(ValueError, match="validation_fraction"):
        assign_gauge_splits(STAIDS, fraction, 0)


def test_duplicate_staids_fail():
    with pytest.raises(ValueError, match="duplicate"):
        assign_gauge_splits(["00000001", "00000001"], 0.0, 0)


def test_observed_days_per_period():
    time = pd.date_range("2000-01-01", periods=6, freq="D")
    q = xr.DataArray(
        [[1.0, np.nan, 1.0, 1.0, np.nan, np.nan], [np.nan] * 6],
        dims=("gage_id", "time"), coords={"gage_id": ["a", "b"], "time": time},
    )
    periods = parse_periods({"train": ["2000-01-01", "2000-01-03"], "test": ["2000-01-04", "2000-01-06"]})
    counts = observed_days(q, periods)
    assert counts["train"].tolist() == [2, 0]
    assert counts["test"].tolist() == [1, 0]


def test_training_reach_mask():
    closures = [np.array([0, 1]), np.array([2]), np.array([1, 3])]
    mask = training_reach_mask(5, closures, np.array([True, False, True]))
    assert mask.tolist() == [True, True, False, True, False]
    with pytest.raises(ValueError, match="training gauge"):
        training_reach_mask(5, closures, np.zeros(3, dtype=bool))
