"""MERIT-Basins adapter on generated shapefiles, gauge CSVs and attribute NetCDF."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from ddr_pipeline.data import io, schema
from ddr_pipeline.ingest.adjacency import read_adjacency
from ddr_pipeline.ingest.merit import MeritError, convert_merit, read_rivers
from ddr_pipeline.ingest.stores import StoreError

from .generators import (
    daily_store,
    dendritic_network,
    upstream_columns,
    write_gauge_csv,
    write_merit_shapefile,
    write_zarr_store,
)


@pytest.fixture(scope="module")
def merit(tmp_path_factory):
    root = tmp_path_factory.mktemp("merit")
    ids, to_ids = dendritic_network(500, n_basins=4, window=5, seed=11)
    comids = ids + 71_000_000
    to_comids = np.where(to_ids > 0, to_ids + 71_000_000, 0)
    half = comids.size // 2  # two pfaf zones; links across the files must survive
    write_merit_shapefile(root / "riv_pfaf_71.shp", comids[:half], to_comids[:half], seed=1)
    write_merit_shapefile(root / "riv_pfaf_72.shp", comids[half:], to_comids[half:], seed=2)
    gauge_reaches = [int(comids[to_comids == 0][0]), int(comids[7]), int(comids[-3]), 99]
    write_gauge_csv(
        root / "gauges.csv",
        ["1000001", "02000002", "3000003", "4000004"],
        gauge_reaches,
        DA_VALID=[True, True, False, True],
        FLOW_SCALE=[1.0, np.nan, 0.5, 1.0],
    )
    attrs = xr.Dataset(
        {
            "aridity": ("COMID", np.linspace(0, 1, comids.size)),
            "meanelevation": ("COMID", comids[::-1] * 1e-6),
        },
        coords={"COMID": comids[::-1]},
    )
    attrs.to_netcdf(root / "attributes.nc", engine="h5netcdf")
    return root, comids, to_comids, gauge_reaches


def test_convert_merit(merit):
    root, comids, to_comids, gauge_reaches = merit
    tables = convert_merit(
        [root / "riv_pfaf_71.shp", root / "riv_pfaf_72.shp"],
        root / "gauges.csv",
        attributes=root / "attributes.nc",
        attribute_names=["meanelevation"],
    )
    reaches = tables.reaches.set_index("id")
    assert reaches.loc[comids, "to_id"].tolist() == to_comids.tolist()
    assert (reaches["x"] == 0.3).all() and reaches["top_width"].isna().all()
    assert (reaches["length_m"] > 900).all()
    schema.validate_reaches(tables.reaches)
    gauges = tables.gauges.set_index("STAID")
    # DA_VALID false drops 03000003; COMID 99 is not a reach; STAIDs zero-filled to 8
    assert gauges.index.tolist() == ["01000001", "02000002"]
    # the gauge reach itself (not DDR's upstream neighbours, DDR issue #192)
    assert gauges.loc["02000002", "reach_ids"] == [gauge_reaches[1]]
    assert gauges.loc["01000001", "reach_ids"] == [gauge_reaches[0]]
    assert gauges["flow_scale"].tolist() == [1.0, 1.0]
    schema.validate_gauges(tables.gauges, tables.reaches["id"].to_numpy())
    attrs = tables.attributes.set_index("id")
    assert attrs.columns.tolist() == ["meanelevation"]
    np.testing.assert_allclose(attrs.loc[comids, "meanelevation"], comids * 1e-6)


def test_missing_column_is_named(tmp_path):
    ids, to_ids = dendritic_network(20, seed=2)
    write_merit_shapefile(tmp_path / "riv.shp", ids, to_ids, drop=("NextDownID",))
    with pytest.raises(MeritError, match="NextDownID"):
        read_rivers(tmp_path / "riv.shp")


def test_cycle_is_named(tmp_path):
    ids = np.array([1, 2, 3, 4])
    to_ids = np.array([2, 3, 1, 0])
    write_merit_shapefile(tmp_path / "riv.shp", ids, to_ids, accumulate=False)
    write_gauge_csv(tmp_path / "g.csv", ["01000001"], [4])
    with pytest.raises(ValueError, match=r"cycles.*1, 2, 3"):
        convert_merit(tmp_path / "riv.shp", tmp_path / "g.csv")


def test_gauge_csv_without_comid(tmp_path):
    ids, to_ids = dendritic_network(20, seed=2)
    write_merit_shapefile(tmp_path / "riv.shp", ids, to_ids)
    pd.DataFrame(
        {"STAID": ["1"], "DRAIN_SQKM": [1.0], "LAT_GAGE": [1.0], "LNG_GAGE": [1.0]}
    ).to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(StoreError, match="COMID"):
        convert_merit(tmp_path / "riv.shp", tmp_path / "g.csv")


def test_bad_length_is_named(tmp_path):
    ids, to_ids = dendritic_network(5, seed=2)
    write_merit_shapefile(tmp_path / "riv.shp", ids, to_ids)
    import geopandas as gpd

    frame = gpd.read_file(tmp_path / "riv.shp", engine="pyogrio")
    frame.loc[frame["COMID"] == ids[2], "lengthkm"] = 0.0
    frame.to_file(tmp_path / "bad.shp", engine="pyogrio")
    write_gauge_csv(tmp_path / "g.csv", ["01000001"], [int(ids[0])])
    with pytest.raises(MeritError, match=rf"lengthkm.*{ids[2]}"):
        convert_merit(tmp_path / "bad.shp", tmp_path / "g.csv")


def test_inconsistent_up_columns_are_reported(tmp_path, caplog):
    ids, to_ids = dendritic_network(30, seed=4)
    path = write_merit_shapefile(tmp_path / "riv.shp", ids, to_ids)
    import geopandas as gpd

    frame = gpd.read_file(path, engine="pyogrio")
    outlet = frame["NextDownID"] == 0
    frame.loc[outlet, "up1"] = int(frame.loc[~outlet, "COMID"].iloc[-1])  # lies
    frame.to_file(tmp_path / "lie.shp", engine="pyogrio")
    write_gauge_csv(tmp_path / "g.csv", ["01000001"], [int(ids[0])])
    with caplog.at_level(logging.WARNING):
        convert_merit(tmp_path / "lie.shp", tmp_path / "g.csv")
    assert "disagree with NextDownID" in caplog.text
    assert upstream_columns(ids, to_ids).shape == (30, 4)


def test_cli_with_config(merit, tmp_path):

    root, comids, _, _ = merit
    from ddr_pipeline.ingest import convert_merit
    qr = daily_store("Qr", "divide_id", comids, "1990-01-01", 30, units="m3 s-1")
    write_zarr_store(qr, tmp_path / "qr.zarr")
    config = {
        "sources": {
            "rivers": [str(root / "riv_pfaf_7*.shp")],
            "gauges": str(root / "gauges.csv"),
            "lateral_inflow": str(tmp_path / "qr.zarr"),
            "start": "1990-01-05",
            "end": "1990-01-09",
            "adjacency": True,
        }
    }
    (tmp_path / "sources.yml").write_text(yaml.safe_dump(config))
    out = tmp_path / "merit"
    convert_merit.main(["--config", str(tmp_path / "sources.yml"), "--out", str(out)])
    reaches = io.read_reaches(out / "reaches.parquet")
    assert len(reaches) == comids.size
    assert io.read_table(out / "gauges.parquet")["STAID"].tolist() == ["01000001", "02000002"]
    assert io.read_zarr(out / "lateral_inflow.zarr").sizes["time"] == 5
    assert read_adjacency(out / "adjacency.zarr").ids.size == comids.size
