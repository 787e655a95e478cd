"""Validators of the input schema: one test per bad input, messages name the offenders."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data import schema

TIME = pd.date_range("1980-01-01", periods=4, freq="D")


def reaches(**overrides: object) -> pd.DataFrame:
    data = {
        "id": [1, 2, 3],
        "to_id": [2, 3, 0],
        "length_m": [100.0, 200.0, 300.0],
        "slope": [0.01, 0.0, 0.001],
        "x": [0.2, 0.0, 0.5],
        "mann_n": [0.03, np.nan, 0.05],
    }
    data.update(overrides)
    return gpd.GeoDataFrame(data, geometry=gpd.points_from_xy([0, 1, 2], [0, 1, 2]), crs=4326)


def gauges(**overrides: object) -> pd.DataFrame:
    data = {
        "STAID": ["01234567", "1234568"],
        "reach_ids": [[1], [2, 3]],
        "drain_sqkm": [10.0, 20.0],
        "lat": [40.0, 41.0],
        "lon": [-75.0, -74.0],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def qr(values: np.ndarray | None = None, ids: list[int] | None = None) -> xr.Dataset:
    ids = ids or [1, 2, 3]
    if values is None:
        values = np.ones((len(ids), len(TIME)), dtype=np.float32)
    return xr.Dataset(
        {"Qr": (("divide_id", "time"), values)}, coords={"divide_id": ids, "time": TIME}
    )


# --- reaches -------------------------------------------------------------------------------------
def test_valid_reaches_pass_with_dtypes() -> None:
    out = schema.validate_reaches(reaches(to_id=[2.0, 3.0, np.nan]))
    assert out["to_id"].dtype == np.int64
    assert out["to_id"].tolist() == [2, 3, 0]
    assert out["mann_n"].dtype == np.float64


def test_missing_reach_column_named() -> None:
    with pytest.raises(KeyError, match="slope"):
        schema.validate_reaches(reaches().drop(columns="slope"))


def test_duplicate_reach_ids_named() -> None:
    with pytest.raises(ValueError, match=r"duplicate id values \[2\]"):
        schema.validate_reaches(reaches(id=[1, 2, 2], to_id=[2, 0, 0]))


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("length_m", [100.0, 0.0, 1.0], "length_m must be > 0 for id \\[2\\]"),
        ("slope", [0.1, 0.1, -0.1], "slope must be >= 0 for id \\[3\\]"),
        ("x", [0.6, 0.1, 0.1], "x must be in \\[0, 0.5\\] for id \\[1\\]"),
        ("id", [0, 2, 3], "id must be > 0"),
    ],
)
def test_bad_reach_values_named(column: str, values: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schema.validate_reaches(reaches(**{column: values}))


def test_dangling_to_id_logged_and_made_outlet(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ddr_pipeline.data.schema"):
        out = schema.validate_reaches(reaches(to_id=[2, 99, 0]))
    assert out["to_id"].tolist() == [2, 0, 0]
    assert "[2]" in caplog.text and "[99]" in caplog.text


# --- gauges --------------------------------------------------------------------------------------
def test_gauges_padded_and_lists() -> None:
    out = schema.validate_gauges(gauges(), [1, 2, 3])
    assert out["STAID"].tolist() == ["01234567", "01234568"]
    assert out["reach_ids"].tolist() == [[1], [2, 3]]


def test_unknown_gauge_reach_named() -> None:
    with pytest.raises(KeyError, match=r"STAID \[01234568\].*unknown reach ids \[7\]"):
        schema.validate_gauges(gauges(reach_ids=[[1], [2, 7]]), [1, 2, 3])


def test_bad_staid_named() -> None:
    with pytest.raises(ValueError, match="USGS-X"):
        schema.validate_gauges(gauges(STAID=["USGS-X", "01234567"]), [1, 2, 3])


def test_duplicate_staid_named() -> None:
    with pytest.raises(ValueError, match="duplicate STAID values \\[01234567\\]"):
        schema.validate_gauges(gauges(STAID=["01234567", "1234567"]), [1, 2, 3])


def test_empty_reach_list_named() -> None:
    with pytest.raises(ValueError, match="reach_ids is empty for STAID \\[01234568\\]"):
        schema.validate_gauges(gauges(reach_ids=[[1], []]), [1, 2, 3])


# --- attributes ----------------------------------------------------------------------------------
def attributes() -> pd.DataFrame:
    return pd.DataFrame({"id": [3, 1, 2], "a": [3.0, 1.0, 2.0], "b": [30, 10, 20]})


def test_attributes_ordered_and_float() -> None:
    out = schema.validate_attributes(attributes(), [1, 2], ["a", "b"])
    assert out["id"].tolist() == [1, 2]
    assert out["b"].dtype == np.float64 and out["b"].tolist() == [10.0, 20.0]


def test_missing_attribute_columns_named() -> None:
    with pytest.raises(KeyError, match=r"\['c', 'd'\]"):
        schema.validate_attributes(attributes(), [1, 2], ["a", "c", "d"])


def test_missing_attribute_reaches_named() -> None:
    with pytest.raises(KeyError, match=r"reach id\(s\) \[4, 5\]"):
        schema.validate_attributes(attributes(), [1, 4, 5], ["a"])


def test_infinite_attribute_named() -> None:
    bad = attributes().assign(a=[1.0, np.inf, 2.0])
    with pytest.raises(ValueError, match=r"\['a'\]"):
        schema.validate_attributes(bad, [1, 2, 3], ["a", "b"])


# --- lateral inflow ------------------------------------------------------------------------------
def test_negative_inflow_names_ids_and_dates() -> None:
    values = np.ones((3, 4), dtype=np.float32)
    values[1, 2] = -0.5
    with pytest.raises(ValueError, match=r"divide_id \[2\].*1980-01-03"):
        schema.validate_lateral_inflow(qr(values), [1, 2, 3], nan_fill=0.0)


def test_nan_inflow_filled_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    values = np.ones((3, 4), dtype=np.float32)
    values[0, 0] = values[2, 3] = np.nan
    with caplog.at_level(logging.WARNING, logger="ddr_pipeline.data.schema"):
        out, n = schema.validate_lateral_inflow(qr(values), [3, 1], nan_fill=0.0)
    assert n == 2
    assert out["divide_id"].values.tolist() == [3, 1]
    assert out["Qr"].sel(divide_id=3, time="1980-01-04").item() == 0.0
    assert not out["Qr"].isnull().any()
    assert "filled 2 NaN" in caplog.text


def test_nan_inflow_without_fill_is_error() -> None:
    values = np.ones((3, 4), dtype=np.float32)
    values[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"divide_id \[2\] on \[1980-01-02\]"):
        schema.validate_lateral_inflow(qr(values), [1, 2, 3], nan_fill=None)


def test_missing_divides_named() -> None:
    with pytest.raises(KeyError, match=r"divide_id \[4\]"):
        schema.validate_lateral_inflow(qr(), [1, 4], nan_fill=0.0)


def test_non_daily_time_rejected() -> None:
    ds = qr().assign_coords(time=TIME + pd.Timedelta(hours=6))
    with pytest.raises(ValueError, match="00:00"):
        schema.validate_lateral_inflow(ds, [1], nan_fill=0.0)


# --- observations / forcings ---------------------------------------------------------------------
def obs() -> xr.Dataset:
    q = np.array([[1.0, np.nan, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]], dtype=np.float32)
    return xr.Dataset(
        {"streamflow": (("gage_id", "time"), q)},
        coords={"gage_id": ["01234567", "01234568"], "time": TIME},
    )


def test_observations_ordered_nan_kept() -> None:
    out = schema.validate_observations(obs(), ["01234568", "01234567"])
    assert out["gage_id"].values.tolist() == ["01234568", "01234567"]
    assert int(out["streamflow"].isnull().sum()) == 1


@pytest.mark.parametrize(
    "dtype", [np.dtypes.StringDType(), object, "S8"], ids=["StringDType", "object", "bytes"]
)
def test_observations_accept_any_string_dtype(dtype: object) -> None:
    """zarr v3 loads gage_id as numpy StringDType, which ``astype(str)`` cannot cast."""
    ds = obs()
    ds = ds.assign_coords(gage_id=np.array(["01234567", "01234568"], dtype=dtype))
    out = schema.validate_observations(ds, ["01234568"])
    assert out["gage_id"].dtype.kind == "U"
    assert out["gage_id"].values.tolist() == ["01234568"]
    assert out["streamflow"].values[0].tolist() == [4.0, 5.0, 6.0, 7.0]


def test_as_str_array_formats_numbers_and_strings() -> None:
    values = np.array(["1", "22"], dtype=np.dtypes.StringDType())
    assert schema.as_str_array(values).tolist() == ["1", "22"]
    assert schema.as_str_array(np.array([1, 22])).tolist() == ["1", "22"]


def test_missing_gauge_named() -> None:
    with pytest.raises(KeyError, match=r"gage_id \[09999999\]"):
        schema.validate_observations(obs(), ["01234567", "09999999"])


def test_negative_observation_named() -> None:
    ds = obs()
    ds["streamflow"][1, 3] = -1.0
    with pytest.raises(ValueError, match=r"01234568.*1980-01-04"):
        schema.validate_observations(ds, ["01234567", "01234568"])


def forcings() -> xr.Dataset:
    base = qr()["Qr"]
    return xr.Dataset({"P": base, "PET": base * 0.5, "Temp": base * 10})


def test_forcings_missing_variable_named() -> None:
    with pytest.raises(KeyError, match=r"\['SWE'\]"):
        schema.validate_forcings(forcings(), [1, 2], ["P", "SWE"])


def test_forcings_nan_named() -> None:
    ds = forcings()
    ds["PET"][2, 1] = np.nan
    with pytest.raises(ValueError, match=r"'PET' for divide_id \[3\] on \[1980-01-02\]"):
        schema.validate_forcings(ds, [1, 2, 3], ["P", "PET"])


def test_forcings_subset_ordered() -> None:
    out = schema.validate_forcings(forcings(), [2, 1], ["Temp"])
    assert list(out.data_vars) == ["Temp"] and out["divide_id"].values.tolist() == [2, 1]


# --- periods -------------------------------------------------------------------------------------
def test_period_inside_passes() -> None:
    schema.check_period(qr(), "1980-01-02", "1980-01-04", "lateral_inflow.zarr")


@pytest.mark.parametrize(
    ("start", "end"), [("1979-12-31", "1980-01-02"), ("1980-01-01", "1980-01-05")]
)
def test_period_outside_named(start: str, end: str) -> None:
    with pytest.raises(
        ValueError, match=rf"forcings.zarr.*{start} .. {end}.*1980-01-01 .. 1980-01-04"
    ):
        schema.check_period(qr(), start, end, "forcings.zarr")


def test_period_gap_named() -> None:
    ds = qr().isel(time=[0, 1, 3])
    with pytest.raises(ValueError, match="1980-01-03"):
        schema.check_period(ds, "1980-01-01", "1980-01-04", "observations.zarr")


# --- hardening: every bad value is named, nothing is silently filled ------------------------------
@pytest.mark.parametrize(("column", "value"), [("top_width", np.inf), ("mann_n", -1.0)])
def test_bad_optional_reach_column_named(column: str, value: float) -> None:
    table = reaches(**{column: [1.0, value, np.nan]})
    with pytest.raises(ValueError, match=rf"{column} must be finite.*id \[2\]"):
        schema.validate_reaches(table)


def test_infinite_inflow_names_ids_and_dates() -> None:
    values = np.ones((3, 4), dtype=np.float32)
    values[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"lateral_inflow.zarr: infinite Qr.*\[3\].*1980-01-02"):
        schema.validate_lateral_inflow(qr(values), [1, 2, 3], nan_fill=0.0)


def test_infinite_observation_named() -> None:
    ds = obs()
    ds["streamflow"][0, 2] = np.inf
    with pytest.raises(ValueError, match=r"observations.zarr: infinite.*01234567.*1980-01-03"):
        schema.validate_observations(ds, ["01234567", "01234568"])


def test_negative_infinite_forcing_named() -> None:
    ds = forcings()
    ds["P"][0, 3] = -np.inf
    with pytest.raises(ValueError, match=r"forcings.zarr: infinite value in 'P'.*\[1\].*01-04"):
        schema.validate_forcings(ds, [1, 2, 3], ["P"])


def test_string_typed_variable_rejected() -> None:
    ds = obs()
    ds["streamflow"] = ds["streamflow"].astype(str)
    with pytest.raises(ValueError, match=r"observations.zarr: variable 'streamflow' has dtype <U"):
        schema.validate_observations(ds, ["01234567"])


def test_weekly_observations_rejected_naming_missing_days() -> None:
    weekly = pd.date_range("1980-01-01", periods=4, freq="7D")
    ds = obs().assign_coords(time=weekly)
    with pytest.raises(ValueError, match=r"observations.zarr: time is not daily.*1980-01-02"):
        schema.validate_observations(ds, ["01234567"])


def test_nan_fill_refused_for_a_lost_reach() -> None:
    """A deleted chunk reads as NaN: filling it must fail, naming the divides."""
    values = np.ones((3, 4), dtype=np.float32)
    values[1, :] = np.nan
    with pytest.raises(ValueError, match=r"more than 10.0% of the days for divide_id \[2\]"):
        schema.validate_lateral_inflow(
            qr(values), [1, 2, 3], nan_fill=0.0, max_nan_fraction_per_reach=0.1
        )


def test_nan_fill_refused_above_the_overall_ceiling() -> None:
    values = np.ones((3, 4), dtype=np.float32)
    values[:, 0] = np.nan  # 25% of each reach, 25% overall
    with pytest.raises(ValueError, match=r"25.00% of all Qr values are NaN, more than 10.00%"):
        schema.validate_lateral_inflow(
            qr(values),
            [1, 2, 3],
            nan_fill=0.0,
            max_nan_fraction_per_reach=0.5,
            max_nan_fraction=0.1,
        )


# --- units (issue 26 finding 5: units were never read) -------------------------------------------


def test_observations_in_cubic_feet_are_converted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ddr_pipeline.data.units import FT3_TO_M3

    ds = obs()
    ds["streamflow"].attrs["units"] = "ft3 s-1"
    with caplog.at_level(logging.WARNING):
        out = schema.validate_observations(ds, ["01234567", "01234568"])
    expected = np.array([4.0, 5.0, 6.0, 7.0]) * FT3_TO_M3
    np.testing.assert_allclose(out["streamflow"].values[1], expected, rtol=1e-6)
    assert out["streamflow"].attrs["units"] == "m3 s-1"
    assert "converting 'streamflow' from ft3 s-1 to m3 s-1" in caplog.text


def test_observations_as_a_daily_depth_are_converted_with_the_drainage_area() -> None:
    ds = obs()
    ds["streamflow"].attrs["units"] = "mm/day"
    out = schema.validate_observations(ds, ["01234567", "01234568"], [86.4, 8.64])
    # 1 mm/day over 86.4 km2 is 1 m3/s
    np.testing.assert_allclose(out["streamflow"].values[0], [1.0, np.nan, 2.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(out["streamflow"].values[1], [0.4, 0.5, 0.6, 0.7], rtol=1e-6)
    with pytest.raises(ValueError, match="observations.zarr: variable 'streamflow' is a depth"):
        schema.validate_observations(ds, ["01234567", "01234568"])


@pytest.mark.parametrize("units", ["furlongs per fortnight", "mm/day"])
def test_unknown_or_unconvertible_units_are_errors(units: str) -> None:
    ds = qr()
    ds["Qr"].attrs["units"] = units
    with pytest.raises(ValueError, match=f"lateral_inflow.zarr: variable 'Qr' .*{units}"):
        schema.validate_lateral_inflow(ds, [1, 2, 3], 0.0)


def test_forcings_in_kelvin_are_converted_and_a_missing_units_attribute_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ds = forcings()
    ds["Temp"] = ds["Temp"].assign_attrs(units="K")
    ds["P"] = ds["P"].assign_attrs(units="mm day-1")
    with caplog.at_level(logging.WARNING):
        out = schema.validate_forcings(ds, [1, 2], ["P", "Temp"])
    np.testing.assert_allclose(out["Temp"].values, 10.0 - 273.15, rtol=1e-5)
    assert out["Temp"].attrs["units"] == "degC"
    with caplog.at_level(logging.WARNING):
        schema.validate_forcings(forcings(), [1, 2], ["P"])
    assert "variable 'P' has no units attribute; assuming the schema's mm day-1" in caplog.text
