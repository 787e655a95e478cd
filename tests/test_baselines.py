"""Tests for ddr_pipeline.evaluation.baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.evaluation import baselines
from ddr_pipeline.network import RiverNetwork

#  10 -> 30 <- 20 ; 30 -> 50 <- 40 ; 50 outlet
IDS = np.array([10, 20, 30, 40, 50])
TO = np.array([30, 30, 50, 50, 0])


@pytest.fixture
def network() -> RiverNetwork:
    return RiverNetwork.from_ids(IDS, TO)


def test_closure_matrix(network: RiverNetwork) -> None:
    gauges = [network.index_of([30]), network.index_of([50]), network.index_of([40])]
    matrix = baselines.closure_matrix(network, gauges).toarray()
    np.testing.assert_array_equal(matrix, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 1, 0]])


def test_summed_lateral_inflow(network: RiverNetwork) -> None:
    qlat = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [1.0, np.nan, 1.0, 1.0, 1.0]])
    gauges = [network.index_of([30]), network.index_of([50]), network.index_of([10, 40])]
    out = baselines.summed_lateral_inflow(qlat, network, gauges)
    np.testing.assert_allclose(out[0], [6.0, 15.0, 5.0])
    assert np.isnan(out[1, 0]) and np.isnan(out[1, 1])  # reach 20 missing that day
    assert out[1, 2] == pytest.approx(2.0)


def test_reference_at_gauges_sums_reaches_and_aligns_dates() -> None:
    dates = pd.date_range("1980-01-01", periods=3, freq="D")
    ref = xr.DataArray(
        np.arange(10, dtype=np.float32).reshape(5, 2),
        dims=("divide_id", "time"),
        coords={"divide_id": IDS, "time": dates[1:]},
    )
    out = baselines.reference_at_gauges(ref, [[30], [10, 20], [99]], dates)
    assert out.shape == (3, 3)
    assert np.isnan(out[0]).all()  # day not in the product
    np.testing.assert_allclose(out[1:, 0], [4.0, 5.0])
    np.testing.assert_allclose(out[1:, 1], [0 + 2, 1 + 3])
    assert np.isnan(out[:, 2]).all()  # reach 99 is not in the product


def test_load_reference(tmp_path: Path) -> None:
    assert baselines.load_reference(None) is None
    assert baselines.load_reference(tmp_path / "missing.zarr") is None
    store = tmp_path / "ref.zarr"
    xr.Dataset({"outflow": (("divide_id", "time"), np.ones((2, 3)))}).to_zarr(
        store, consolidated=False
    )
    assert baselines.load_reference(store).shape == (2, 3)
    with pytest.raises(KeyError, match="flow"):
        baselines.load_reference(store, variable="flow")
