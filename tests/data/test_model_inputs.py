"""Assembling the model-ready dataset (architecture.md §4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data.model_inputs import build_model_inputs

DATES = pd.date_range("2000-01-01", periods=5, freq="D")
IDS = np.array([3, 1, 2], dtype=np.int64)


def _inputs() -> dict:
    reaches = pd.DataFrame(
        {"id": IDS, "to_id": [0, 2, 3], "length_m": [1.0, 2.0, 3.0], "slope": [0.1] * 3,
         "x": [0.2] * 3, "side_slope": [np.nan] * 3}
    )
    attributes = pd.DataFrame({"id": IDS, "a": [1.0, np.nan, 3.0]})
    q = np.ones((3, DATES.size), dtype=np.float32)
    lateral = xr.Dataset({"Qr": (("divide_id", "time"), q)}, coords={"divide_id": IDS, "time": DATES})
    forcings = xr.Dataset(
        {"P": (("divide_id", "time"), q * 4.0), "T": (("divide_id", "time"), q * 2.0)},
        coords={"divide_id": IDS, "time": DATES},
    )
    obs = xr.Dataset(
        {"streamflow": (("gage_id", "time"), np.arange(10, dtype=np.float32).reshape(2, 5))},
        coords={"gage_id": ["00000002", "00000001"], "time": DATES},
    )
    stats = {
        "attributes": {"a": {"mean": 2.0, "std": 1.0}},
        "forcings": {"P": {"mean": 2.0, "std": 2.0}, "T": {"mean": 2.0, "std": 1.0}},
    }
    return {"reaches": reaches, "attributes": attributes, "lateral_inflow": lateral,
            "forcings": forcings, "observations": obs, "stats": stats,
            "attribute_names": ["a"], "forcing_names": ["P", "T"]}


def test_layout_and_values():
    ds = build_model_inputs(**_inputs(), dates=DATES[1:4], attrs={"title": "x"})
    assert ds["reach_id"].values.tolist() == IDS.tolist()  # the reaches' order
    assert ds["gage_id"].values.tolist() == ["00000002", "00000001"]
    assert ds["lateral_inflow"].dims == ("time", "reach_id")
    assert ds["lateral_inflow"].dtype == np.float32 and ds["lateral_inflow"].attrs["units"] == "m3 s-1"
    assert ds.sizes["time"] == 3
    np.testing.assert_allclose(ds["forcings"].sel(forcing="P").values, 1.0)
    np.testing.assert_allclose(ds["forcings"].sel(forcing="T").values, 0.0)
    np.testing.assert_allclose(ds["attributes"].values[:, 0], [-1.0, 0.0, 1.0])  # NaN -> 0
    assert np.isnan(ds["attributes_raw"].values[1, 0])
    np.testing.assert_array_equal(ds["observations"].sel(gage_id="00000002").values, [1, 2, 3])
    assert "side_slope" not in ds  # never observed
    assert ds.attrs == {"title": "x"}


def test_observations_outside_their_record_are_nan():
    inputs = _inputs()
    inputs["observations"] = inputs["observations"].isel(time=slice(0, 2))
    ds = build_model_inputs(**inputs, dates=DATES)
    assert np.isnan(ds["observations"].values[2:]).all()


def test_misaligned_inputs_fail():
    inputs = _inputs()
    inputs["attributes"] = inputs["attributes"].iloc[::-1]
    with pytest.raises(ValueError, match="attributes is not aligned"):
        build_model_inputs(**inputs, dates=DATES)
