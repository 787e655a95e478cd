"""Lateral-inflow sources: daily and hourly rows, depth units, NWM output, zarr and netCDF."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data import schema
from ddr_pipeline.ingest.lateral_inflow import NwmInflow, StoreInflow, daily_means
from ddr_pipeline.ingest.stores import MissingRule, StoreError


def hourly(name: str, dim: str, ids: list[int], start: str, hours: int, units: str) -> xr.Dataset:
    """``name(dim, time)`` with value = 100 * id + hour of the series (known daily means)."""
    times = pd.date_range(start, periods=hours, freq="h")
    values = np.array([[100.0 * i + h for h in range(hours)] for i in ids])
    da = xr.DataArray(values, dims=(dim, "time"), coords={dim: ids, "time": times})
    da.attrs["units"] = units
    return da.to_dataset(name=name)


def test_hourly_rows_become_calendar_day_means(tmp_path):
    ds = hourly("Qr", "divide_id", [1, 2], "2001-01-01 00:00", 72, "m3/s")
    ds.to_zarr(tmp_path / "qr.zarr", zarr_format=3, consolidated=False)
    out = StoreInflow(str(tmp_path / "qr.zarr")).read([2, 1])
    assert out["Qr"].dims == ("divide_id", "time") and out["Qr"].attrs["units"] == "m3 s-1"
    assert out["time"].to_numpy().astype("datetime64[D]").astype(str).tolist() == [
        "2001-01-01",
        "2001-01-02",
        "2001-01-03",
    ]
    # day d of reach 2 averages hours 24d .. 24d+23: 200 + 24d + 11.5
    np.testing.assert_allclose(out["Qr"].sel(divide_id=2).to_numpy(), [211.5, 235.5, 259.5])
    schema.validate_lateral_inflow(out, [2, 1], nan_fill=None)


def test_end_stamped_hours_and_incomplete_edge_days(tmp_path):
    # 01:00 on day 1 .. 00:00 on day 3: with stamp="end" exactly days 1 and 2
    ds = hourly("Qr", "divide_id", [5], "2001-01-01 01:00", 48, "m3/s")
    ds.to_netcdf(tmp_path / "qr.nc", engine="h5netcdf")
    out = StoreInflow(str(tmp_path / "qr.nc"), stamp="end").read([5])
    np.testing.assert_allclose(out["Qr"].to_numpy()[0], [511.5, 535.5])
    # the same store read with stamp="start": the partial first (23 h) and last (1 h) days drop
    start = StoreInflow(str(tmp_path / "qr.nc")).read([5])
    assert start.sizes["time"] == 1 and float(start["Qr"][0, 0]) == pytest.approx(500 + 34.5)


def test_a_missing_row_is_named_by_the_steps_found():
    ds = hourly("Qr", "divide_id", [1], "2001-01-01", 72, "m3/s")
    with pytest.raises(StoreError, match=r"time steps of \[3600, 7200\] s"):
        daily_means(ds.drop_isel(time=[30])["Qr"], "qr.zarr")
    with pytest.raises(StoreError, match=r"time steps of \[25200\] s.*dividing a day"):
        daily_means(ds.isel(time=slice(0, None, 7))["Qr"], "qr.zarr")


def test_depth_source_with_unit_areas(tmp_path):
    ds = hourly("Qr", "divide_id", [1], "2001-01-01", 24, "mm/day")
    ds["Qr"][:] = 86.4
    ds.to_zarr(tmp_path / "depth.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(StoreError, match=r"is a depth \('mm/day'\)"):
        StoreInflow(str(tmp_path / "depth.zarr")).read([1])
    out = StoreInflow(str(tmp_path / "depth.zarr"), area_km2=pd.Series({1: 3.0})).read([1])
    np.testing.assert_allclose(out["Qr"].to_numpy(), [[3.0]], rtol=1e-6)  # 86.4 mm/d on 3 km2


def test_nwm_lateral_inflow_is_surface_runoff_plus_bucket(tmp_path):
    runoff = hourly("qSfcLatRunoff", "feature_id", [101, 102], "2001-01-01 01:00", 48, "m3 s-1")
    bucket = hourly("qBucket", "feature_id", [101, 102], "2001-01-01 01:00", 48, "m3 s-1")
    ds = xr.merge([runoff, bucket.assign(qBucket=bucket["qBucket"] * 0 + 1.0)])
    ds = ds.transpose("time", "feature_id")  # NWM's own order
    ds.to_zarr(tmp_path / "chrtout.zarr", zarr_format=3, consolidated=False)
    out = NwmInflow(str(tmp_path / "chrtout.zarr")).read([102], period=("2001-01-02", "2001-01-02"))
    # stamps 01-02 01:00 .. 01-03 00:00 (hours 24..47): 10200 + 35.5, plus qBucket 1.0
    np.testing.assert_allclose(out["Qr"].to_numpy(), [[10236.5]])
    with pytest.raises(StoreError, match=r"1 divides absent.*\[7\]"):
        NwmInflow(str(tmp_path / "chrtout.zarr")).read([7])
    filled = NwmInflow(str(tmp_path / "chrtout.zarr"), missing=MissingRule("fill", 0.0)).read([7])
    assert (filled["Qr"].to_numpy() == 0.0).all()
    runoff.to_zarr(tmp_path / "runoff_only.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(StoreError, match=r"no NWM variable 'qBucket'"):
        NwmInflow(str(tmp_path / "runoff_only.zarr")).read([101])
