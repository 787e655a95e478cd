"""``ddr-convert-nwm`` on a tiny synthetic NWM domain written in the test (RouteLink, LAKEPARM,
hourly CHRTOUT, a USGS time slice, a reservoir index), and the committed t-route domain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data import io, lakes, schema
from ddr_pipeline.ingest import convert_nwm, nwm_domain, stores
from ddr_pipeline.network import RiverNetwork

from .test_nwm_lakes import lakeparm, routelink

LINKS = routelink()["link"].to_numpy()
TIMES = pd.date_range("2021-08-23 13:00", periods=3, freq="h")
COMMITTED = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "nwm_lower_colorado"


def write_routelink(path: Path) -> None:
    rl = routelink()
    n = len(rl)
    gages = ["".rjust(15)] * n
    gages[6] = "08158000".rjust(15)  # on channel link 7
    gages[4] = "08159000".rjust(15)  # on link 5, inside lake 100
    data = {
        "link": rl["link"].astype(np.int32),
        "to": rl["to"].astype(np.int32),
        "NHDWaterbodyComID": rl["NHDWaterbodyComID"].astype(np.int32),
        "Length": rl["Length"].astype(np.float32),
        "So": np.full(n, 0.001, np.float32),
        "MusX": np.full(n, 0.2, np.float32),
        "n": np.full(n, 0.06, np.float32),
        "TopWdth": np.full(n, 5.0, np.float32),
        "ChSlp": np.full(n, 0.6, np.float32),
        "BtmWdth": np.full(n, 2.0, np.float32),
        "alt": np.full(n, 100.0, np.float32),
        "order": np.ones(n, np.int32),
        "gages": np.array(gages, dtype="S15"),
        "lat": np.linspace(29.0, 30.0, n).astype(np.float32),
        "lon": np.linspace(-97.0, -96.0, n).astype(np.float32),
    }
    xr.Dataset({k: ("feature_id", np.asarray(v)) for k, v in data.items()}).to_netcdf(path)


def write_inputs(root: Path) -> dict[str, Path]:
    paths = {k: root / k for k in ("RouteLink.nc", "LAKEPARM.nc", "chrtout", "slices", "index.nc")}
    write_routelink(paths["RouteLink.nc"])
    lp = lakeparm([100, 200, 999])  # 999 is on no link: the subset case
    xr.Dataset({k: ("feature_id", v.to_numpy()) for k, v in lp.items()}).to_netcdf(
        paths["LAKEPARM.nc"]
    )
    paths["chrtout"].mkdir()
    for k, t in enumerate(TIMES):
        ds = xr.Dataset(
            {
                "q_lateral": ("feature_id", np.arange(10.0) + k, {"units": "m3 s-1"}),
                "streamflow": ("feature_id", 100.0 * LINKS + k, {"units": "m3 s-1"}),
            },
            coords={"feature_id": LINKS, "time": [t]},
        )
        ds.to_netcdf(paths["chrtout"] / f"{t:%Y%m%d%H%M}.CHRTOUT_DOMAIN1")
    paths["slices"].mkdir()
    for minute, value in ((15, 2.0), (45, 4.0)):  # both in the hour ending 14:00
        stamp = (TIMES[0] + pd.Timedelta(minutes=minute)).strftime("%Y-%m-%d_%H:%M:%S")
        xr.Dataset(
            {
                "stationId": ("stationIdInd", np.array(["08158000".rjust(15)], dtype="S15")),
                "time": ("stationIdInd", np.array([stamp], dtype="S19")),
                "discharge": ("stationIdInd", np.array([value], np.float32)),
                "discharge_quality": ("stationIdInd", np.array([100], np.int16)),
            }
        ).to_netcdf(paths["slices"] / f"{stamp}.15min.usgsTimeSlice.ncdf")
    xr.Dataset(
        {"lake_id": ("feature_id", [100, 200]), "reservoir_type": ("feature_id", [4, 1])}
    ).to_netcdf(paths["index.nc"])
    return paths


def test_converter_writes_a_collapsed_domain_with_lakes(tmp_path: Path) -> None:
    p = write_inputs(tmp_path)
    out = tmp_path / "out"
    convert_nwm.main(
        ["--routelink", str(p["RouteLink.nc"]), "--lakeparm", str(p["LAKEPARM.nc"]),
         "--chrtout", str(p["chrtout"] / "*.CHRTOUT_DOMAIN1"),
         "--usgs-timeslices", str(p["slices"] / "*.ncdf"), "--reservoir-index", str(p["index.nc"]),
         "--lakeparm-subset", "--out", str(out), "--source", "synthetic", "--license", "CC0"]
    )  # fmt: skip
    reaches = io.read_reaches(out / schema.REACHES_FILE)
    assert reaches["id"].tolist() == [1, 2, 4, 6, 7, 8, 9, 10]
    assert reaches.set_index("id").loc[[2, 4], "to_id"].tolist() == [6, 6]
    RiverNetwork.from_ids(reaches["id"].to_numpy(), reaches["to_id"].to_numpy())
    table = lakes.read_lakes(out, reaches["id"])
    assert table is not None
    assert table.set_index("lake_id")["reach_id"].to_dict() == {100: 6, 200: 8}
    assert table.set_index("lake_id")["nwm_reservoir_type"].to_dict() == {100: 4, 200: 1}
    gauges = io.read_table(out / schema.GAUGES_FILE).set_index("STAID")
    assert gauges["reach_ids"].to_dict() == {"08158000": [7], "08159000": [6]}  # 5 -> outlet 6
    qr = io.read_zarr(out / schema.LATERAL_INFLOW_HOURLY_STORE)
    assert qr.attrs["license"] == "CC0" and qr["Qr"].attrs["units"] == "m3 s-1"
    # link index i carries q_lateral i + k at hour k: lake 100 = links 3, 5, 6 (indices 2, 4, 5)
    np.testing.assert_allclose(qr["Qr"].sel(divide_id=6), [11.0, 14.0, 17.0])
    np.testing.assert_allclose(qr["Qr"].sum("divide_id"), [45.0, 55.0, 65.0])
    ref = io.read_zarr(out / schema.REFERENCE_HOURLY_STORE)
    np.testing.assert_allclose(ref["outflow"].sel(divide_id=6), [600.0, 601.0, 602.0])
    np.testing.assert_array_equal(ref["time"].to_numpy(), TIMES.to_numpy())
    obs = io.read_zarr(out / schema.OBSERVATIONS_HOURLY_STORE)["streamflow"]
    np.testing.assert_allclose(obs.sel(gage_id="08158000"), [np.nan, 3.0, np.nan])


def test_read_chrtout_refuses_a_missing_hour(tmp_path: Path) -> None:
    p = write_inputs(tmp_path)
    files = sorted(p["chrtout"].glob("*"))
    with pytest.raises(stores.StoreError, match="not hourly"):
        nwm_domain.read_chrtout([files[0], files[2]], ("q_lateral",))
    with pytest.raises(stores.StoreError, match="lacks \\['velocity'\\]"):
        nwm_domain.read_chrtout(files, ("velocity",))


def test_hourly_store_validator_names_bad_values() -> None:
    ds = xr.Dataset(
        {"Qr": (("divide_id", "time"), np.array([[1.0, -1.0, 1.0]], np.float32))},
        coords={"divide_id": [6], "time": TIMES},
    )
    with pytest.raises(ValueError, match=r"negative Qr for divide_id \[6\]"):
        schema.validate_hourly(ds, "Qr", [6], "divide_id", "x.zarr")
    with pytest.raises(ValueError, match="not a regular hourly series"):
        schema.validate_hourly(ds.isel(time=[0, 2]), "Qr", [6], "divide_id", "x.zarr")
    with pytest.raises(KeyError, match=r"no data for divide_id \[7\]"):
        schema.validate_hourly(ds, "Qr", [7], "divide_id", "x.zarr")


@pytest.mark.skipif(not COMMITTED.exists(), reason="the NWM domain is not checked out")
def test_committed_nwm_domain_validates() -> None:
    reaches = schema.validate_reaches(io.read_reaches(COMMITTED / schema.REACHES_FILE))
    ids = reaches["id"].to_numpy()
    RiverNetwork.from_ids(ids, reaches["to_id"].to_numpy())
    table = lakes.read_lakes(COMMITTED, ids)
    assert table is not None and len(table) == 30
    gauges = schema.validate_gauges(io.read_table(COMMITTED / schema.GAUGES_FILE), ids)
    for name, variable, wanted, dim in (
        (schema.LATERAL_INFLOW_HOURLY_STORE, "Qr", ids, "divide_id"),
        (schema.REFERENCE_HOURLY_STORE, "outflow", ids, "divide_id"),
        (schema.OBSERVATIONS_HOURLY_STORE, "streamflow", gauges["STAID"], "gage_id"),
    ):
        ds = schema.validate_hourly(io.read_zarr(COMMITTED / name), variable, wanted, dim, name)
        assert ds.sizes["time"] == 28
    assert not np.isnan(io.read_zarr(COMMITTED / schema.REFERENCE_HOURLY_STORE)["outflow"]).any()
