"""Store readers on locally generated zarr / Icechunk / NetCDF stores (no network)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data import io, schema
from ddr_pipeline.ingest.stores import (
    FT3_TO_M3,
    MissingRule,
    StoreError,
    StoreSource,
    detect_kind,
    icechunk_format,
    normalize_divide_ids,
    open_store,
    read_attributes,
    read_forcings,
    read_gage_info,
    read_lateral_inflow,
    read_observations,
    write_domain_stores,
)

from .generators import daily_store, write_icechunk_store, write_zarr_store

CATS = [f"cat-{i}" for i in (5, 3, 9, 1)]


@pytest.fixture(scope="module")
def qr_1981(tmp_path_factory):
    """A lateral-inflow zarr store starting 1981-03-01 (not 1980-01-01) with cat-N ids."""
    ds = daily_store("Qr", "divide_id", CATS, "1981-03-01", 40, units="m3 s-1", seed=1)
    path = write_zarr_store(ds, tmp_path_factory.mktemp("s") / "qr.zarr")
    return ds, path


def test_lateral_inflow_by_date_and_missing_fill(qr_1981, caplog):
    ds, path = qr_1981
    store = open_store(path)
    with caplog.at_level(logging.WARNING):
        out = read_lateral_inflow(store, [9, 1, 42], period=("1981-03-10", "1981-03-12"))
    assert out["Qr"].dims == ("divide_id", "time") and out["Qr"].dtype == np.float32
    assert out["Qr"].attrs["units"] == "m3 s-1"
    assert out["time"].to_numpy()[0] == np.datetime64("1981-03-10")
    expected = ds["Qr"].sel(divide_id="cat-9", time=slice("1981-03-10", "1981-03-12")).to_numpy()
    np.testing.assert_array_equal(out["Qr"].sel(divide_id=9).to_numpy(), expected)
    np.testing.assert_allclose(out["Qr"].sel(divide_id=42).to_numpy(), 0.001)
    assert "1 divides absent" in caplog.text and "42" in caplog.text
    schema.validate_lateral_inflow(out, [9, 1, 42], nan_fill=None)


def test_missing_divides_error_rule(qr_1981):
    with pytest.raises(StoreError, match=r"2 divides absent.*\[7, 8\]"):
        read_lateral_inflow(open_store(qr_1981[1]), [5, 7, 8], missing=MissingRule("error"))


def test_period_outside_store_names_dates(qr_1981):
    with pytest.raises(StoreError, match=r"1980-12-31 .. 1981-03-05 is outside.*1981-03-01"):
        read_lateral_inflow(open_store(qr_1981[1]), [5], period=("1980-12-31", "1981-03-05"))


def test_icechunk_repository_and_cfs_conversion(tmp_path):
    ds = daily_store("Qr", "divide_id", np.array([11, 12]), "1995-10-01", 5, units="ft3/s")
    path = write_icechunk_store(ds, tmp_path / "repo")
    store = open_store(path)  # auto-detects the Icechunk repository
    out = read_lateral_inflow(store, [12])
    np.testing.assert_allclose(
        out["Qr"].to_numpy()[0], ds["Qr"].to_numpy()[1] * FT3_TO_M3, rtol=1e-6
    )


def test_wrong_units_and_dims_are_named(tmp_path):
    bad_units = daily_store("Qr", "divide_id", CATS, "1981-01-01", 3, units="m3/day")
    with pytest.raises(StoreError, match=r"'Qr' has units 'm3/day'"):
        read_lateral_inflow(bad_units, [5])
    depth = daily_store("Qr", "divide_id", CATS, "1981-01-01", 3, units="mm/day")
    with pytest.raises(StoreError, match=r"'Qr' is a depth \('mm/day'\).*unit-catchment area"):
        read_lateral_inflow(depth, [5])
    bad_dims = daily_store("Qr", "divide_id", CATS, "1981-01-01", 3, extra_dims=True)
    with pytest.raises(StoreError, match=r"'Qr' has dims \('divide_id', 'time', 'member'\)"):
        read_lateral_inflow(bad_dims, [5])
    with pytest.raises(StoreError, match=r"no variable 'Qr'"):
        read_lateral_inflow(bad_dims.rename({"Qr": "runoff"}), [5])


def test_observations_zero_fill_and_missing_gauges(tmp_path):
    ds = daily_store("streamflow", "gage_id", ["1069700", "02020202"], "1980-01-01", 10)
    out = read_observations(ds, ["01069700", "09999999"], period=("1980-01-02", "1980-01-03"))
    assert out["gage_id"].to_numpy().tolist() == ["01069700", "09999999"]
    np.testing.assert_array_equal(
        out["streamflow"].to_numpy()[0], ds["streamflow"].to_numpy()[0, 1:3]
    )
    assert np.isnan(out["streamflow"].to_numpy()[1]).all()


def test_forcings_units_nan_rule_and_missing(tmp_path):
    ids = np.array([1, 2, 3])
    p = daily_store("P", "divide_id", ids, "1981-01-01", 4, units="mm/day")
    pet = daily_store("PET", "divide_id", ids, "1981-01-01", 4, units="in/day", seed=2)
    temp = daily_store("Temp", "divide_id", ids, "1981-01-01", 4, units="K", seed=3)
    ds = xr.merge([p, pet, temp])
    ds["P"][0, 1] = np.nan
    out = read_forcings(ds, [3, 1])
    np.testing.assert_allclose(out["PET"].to_numpy()[0], pet["PET"].to_numpy()[2] * 25.4, rtol=1e-6)
    np.testing.assert_allclose(
        out["Temp"].to_numpy()[1], temp["Temp"].to_numpy()[0] - 273.15, rtol=1e-5
    )
    row = ds["P"].to_numpy()[0]
    assert out["P"].to_numpy()[1, 1] == pytest.approx(np.nanmean(row), rel=1e-6)
    with pytest.raises(StoreError, match=r"1 divides \(P\) absent.*\[77\]"):
        read_forcings(ds, [1, 77])
    filled = read_forcings(ds, [1, 77], missing=MissingRule("fill", 0.0))
    assert (filled["P"].sel(divide_id=77).to_numpy() == 0.0).all()


def test_attributes_store(tmp_path):
    ds = xr.Dataset(
        {
            "aridity": ("divide_id", [0.1, 0.2, 0.3]),
            "meanP": ("divide_id", [100.0, 200.0, 300.0]),
            "monthly": (("divide_id", "month"), np.zeros((3, 12))),
        },
        coords={"divide_id": np.array(["cat-7", "cat-8", "cat-9"], dtype=object)},
    )
    path = write_icechunk_store(ds, tmp_path / "attrs")
    out = read_attributes(open_store(path, "icechunk"), [9, 7, 100], ["meanP", "aridity"])
    assert out["id"].tolist() == [9, 7, 100]
    assert out["meanP"].tolist()[:2] == [300.0, 100.0] and np.isnan(out["meanP"].iloc[2])
    with pytest.raises(StoreError, match=r"monthly.*\('divide_id', 'month'\)"):
        read_attributes(ds, [7], ["monthly"])
    with pytest.raises(StoreError, match="no attribute"):
        read_attributes(ds, [7], ["glaciers"])


def test_write_domain_stores(tmp_path, qr_1981):
    _, qr_path = qr_1981
    obs = daily_store("streamflow", "gage_id", ["01010101"], "1980-01-01", 800, units="cfs")
    obs_path = write_icechunk_store(obs, tmp_path / "obs")
    forcings = xr.merge(
        [
            daily_store(v, "divide_id", CATS, "1981-01-01", 120, units=u, seed=i)
            for i, (v, u) in enumerate((("P", "mm/day"), ("PET", "mm/day"), ("Temp", "degC")))
        ]
    )
    forc_path = write_zarr_store(forcings, tmp_path / "forcings.zarr")
    written = write_domain_stores(
        tmp_path / "domain",
        [3, 5],
        ["01010101"],
        lateral_inflow=StoreSource(str(qr_path)),
        observations=StoreSource(str(obs_path)),
        forcings=StoreSource(str(forc_path)),
        period=("1981-03-05", "1981-03-20"),
    )
    assert [p.name for p in written] == [
        "lateral_inflow.zarr",
        "observations.zarr",
        "forcings.zarr",
    ]
    qr = io.read_zarr(written[0])
    assert qr["divide_id"].to_numpy().tolist() == [3, 5] and qr.sizes["time"] == 16
    q = io.read_zarr(written[1])
    day = np.datetime64("1981-03-05")
    np.testing.assert_allclose(
        q["streamflow"].sel(time=day).to_numpy(),
        obs["streamflow"].sel(time=day).to_numpy() * FT3_TO_M3,
        rtol=1e-6,
    )
    assert set(io.read_zarr(written[2]).data_vars) == {"P", "PET", "Temp"}


def test_divide_ids_and_gage_info(tmp_path):
    assert normalize_divide_ids(["cat-12", "34", "wb-5"]).tolist() == [12, 34, 5]
    with pytest.raises(StoreError, match="cat-x"):
        normalize_divide_ids(["cat-1", "cat-x"])
    pd.DataFrame(
        {"STAID": ["1069700"], "DRAIN_SQKM": [26.8], "LAT_GAGE": [43.4], "LNG_GAGE": [-70.6]}
    ).to_csv(tmp_path / "g.csv", index=False)
    info = read_gage_info(tmp_path / "g.csv")
    assert info["STAID"].tolist() == ["01069700"] and info["STANAME"].tolist() == ["01069700"]
    pd.DataFrame({"STAID": ["1"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(StoreError, match="DRAIN_SQKM, LAT_GAGE, LNG_GAGE"):
        read_gage_info(tmp_path / "bad.csv")


def test_divides_outside_the_domain_are_ignored(qr_1981):
    """Store divides the domain's divide->reach map lacks do not clash (a CONUS store, a VPU)."""
    ds, _ = qr_1981
    divide_to_reach = pd.Series({3: 30, 9: 90})  # cat-5 and cat-1 map to no reach
    out = read_lateral_inflow(ds, [90, 30], divide_to_reach=divide_to_reach)
    for reach, cat in ((90, "cat-9"), (30, "cat-3")):
        np.testing.assert_allclose(
            out["Qr"].sel(divide_id=reach).to_numpy(),
            ds["Qr"].sel(divide_id=cat).to_numpy().astype(np.float32),
        )
    attrs = xr.Dataset({"a": ("divide_id", [5.0, 3.0, 9.0, 1.0])}, coords={"divide_id": CATS})
    table = read_attributes(attrs, [90, 30], ["a"], divide_to_reach=divide_to_reach)
    assert table["a"].tolist() == [9.0, 3.0]


def test_attribute_store_duplicate_ids_named():
    attrs = xr.Dataset({"a": ("divide_id", [1.0, 2.0])}, coords={"divide_id": ["cat-4", "cat-4"]})
    with pytest.raises(StoreError, match=r"duplicated divide_id values \[4\]"):
        read_attributes(attrs, [4], ["a"])


# ----------------------------------------------------------------------------- store kinds

BUNDLE_OBS = (
    Path(__file__).parent / "ddr_juniata" / "examples" / "juniata" / "data" / "juniata_obs.ic"
)


def test_store_kinds_are_detected_by_what_they_are(tmp_path):
    ds = daily_store("Qr", "divide_id", np.array([1, 2]), "2000-01-01", 3, units="m3 s-1")
    import icechunk

    written = write_icechunk_store(ds, tmp_path / "repo.ic")  # the installed icechunk's format
    assert detect_kind(written) == "icechunk"
    assert detect_kind(BUNDLE_OBS) == "icechunk"  # format 2: a `repo` file
    header = icechunk_format(BUNDLE_OBS)
    assert (header.spec_version, header.writer) == (2, "ic-2.0.3")
    if icechunk.__version__.startswith("1."):  # format 1: refs/ and snapshots/, no `repo` file
        assert (written / "refs").is_dir() and icechunk_format(written) is None
    ds.to_zarr(tmp_path / "v3.store", zarr_format=3, consolidated=False)
    ds.to_zarr(tmp_path / "v2.store", zarr_format=2, consolidated=False)
    assert detect_kind(tmp_path / "v3.store") == detect_kind(tmp_path / "v2.store") == "zarr"
    ds.to_netcdf(tmp_path / "named-anything.bin", engine="h5netcdf")
    assert detect_kind(tmp_path / "named-anything.bin") == "netcdf"


def test_unrecognised_stores_name_the_path_and_what_was_expected(tmp_path):
    (tmp_path / "fake.nc").write_text("STAID,COMID\n")
    with pytest.raises(
        StoreError, match=r"fake.nc: a file that is not netCDF.*expected an Icechunk"
    ):
        open_store(tmp_path / "fake.nc")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "data.csv").write_text("x\n")
    with pytest.raises(StoreError, match=r"folder: unrecognised store \(holds \['data.csv'\]\)"):
        open_store(tmp_path / "folder")
    (tmp_path / "badrepo").mkdir()
    (tmp_path / "badrepo" / "repo").write_bytes(b"not icechunk")
    with pytest.raises(StoreError, match=r"repo: not an Icechunk file"):
        detect_kind(tmp_path / "badrepo")
    with pytest.raises(FileNotFoundError, match="store not found"):
        detect_kind(tmp_path / "absent.zarr")
