"""Hydrofabric v2.2 adapter: real t-route fixture, generated GeoPackages, bad inputs."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from ddr_pipeline.data import schema
from ddr_pipeline.ingest.hydrofabric import (
    HydrofabricError,
    convert_hydrofabric,
    parse_prefixed_ids,
)
from ddr_pipeline.ingest.stores import read_gage_info
from ddr_pipeline.network import RiverNetwork

from .generators import dendritic_network, write_hydrofabric_gpkg, write_layers

FIXTURE = Path(__file__).parent / "hydrofabric" / "gauge_01069700.gpkg"


def test_real_fixture_topology_channel_and_gauge():
    tables = convert_hydrofabric(FIXTURE)
    reaches = tables.reaches.set_index("id")
    # wb-10245 -> nex-10236 -> wb-10236 -> nex-10237 -> wb-10237 -> nex-10238 -> wb-0 (outlet)
    assert reaches["to_id"].to_dict() == {10236: 10237, 10237: 0, 10245: 10236}
    assert reaches.loc[10237, "length_m"] == pytest.approx(5772.196802)
    assert reaches.loc[10236, "slope"] == pytest.approx(0.007301, rel=1e-3)
    assert reaches.loc[10245, "top_width"] == pytest.approx(3.867996)
    assert reaches.loc[10236, "side_slope"] == pytest.approx(0.624312)
    assert (reaches["mann_n"] == 0.06).all() and (reaches["x"] == 0.2).all()
    assert set(tables.reaches.geometry.geom_type) == {"LineString"}
    gauges = tables.gauges
    assert gauges["STAID"].tolist() == ["01069700"]
    assert gauges["reach_ids"].tolist() == [[10237]]
    assert gauges["drain_sqkm"].iloc[0] == pytest.approx(26.845203)
    assert 43.0 < gauges["lat"].iloc[0] < 44.0 and -71.0 < gauges["lon"].iloc[0] < -70.0
    schema.validate_reaches(tables.reaches)
    schema.validate_gauges(gauges, tables.reaches["id"].to_numpy())
    assert tables.attributes is None  # the fixture has no divide-attributes layer


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    ids, to_ids = dendritic_network(400, n_basins=6, window=4, seed=3)
    net = RiverNetwork.from_ids(ids, to_ids)
    confluence = int(ids[np.argmax(np.diff(net.up_ptr))])  # a reach with the most tributaries
    outlet = int(ids[to_ids == 0][0])
    upstream = [int(i) for i in ids[to_ids == confluence]]
    gauges = {"01010101": upstream[0], "2020202": outlet}  # 7 digits: zero-filled on read
    path = tmp_path_factory.mktemp("hf") / "fabric.gpkg"
    write_hydrofabric_gpkg(
        path,
        ids,
        to_ids,
        gauges,
        attribute_layer="flowpath-attributes-ml",
        length_column="Length_m",
        multilines=True,
    )
    return path, ids, to_ids, upstream, outlet


def test_generated_topology_gauges_and_attributes(generated):
    path, ids, to_ids, upstream, outlet = generated
    tables = convert_hydrofabric(path)
    got = tables.reaches.set_index("id")["to_id"]
    assert got.loc[ids].to_numpy().tolist() == to_ids.tolist()
    gauges = tables.gauges.set_index("STAID")
    # a gauge at a confluence nexus sums every flowpath draining into it
    assert sorted(gauges.loc["01010101", "reach_ids"]) == sorted(upstream)
    assert gauges.loc["02020202", "reach_ids"] == [outlet]
    assert len(upstream) >= 2
    attrs = tables.attributes
    assert list(attrs.columns) == ["id", "mean.elevation", "mean.slope", "aridity"]
    assert attrs["id"].tolist() == tables.reaches["id"].tolist()
    assert attrs.notna().all().all()
    schema.validate_gauges(tables.gauges, tables.reaches["id"].to_numpy())


def test_external_attribute_table_and_gauge_info(generated, tmp_path):
    path, ids, _, upstream, _ = generated
    table = pd.DataFrame(
        {"divide_id": [f"cat-{i}" for i in ids], "aridity": ids * 1.0, "glaciers": 0.5}
    )
    info = read_gage_info(
        pd.DataFrame(
            {"STAID": ["1010101"], "DRAIN_SQKM": [12.5], "LAT_GAGE": [40.0], "LNG_GAGE": [-80.0]}
        )
    )
    tables = convert_hydrofabric(
        path, attributes=table, attribute_names=["aridity"], gauge_info=info
    )
    assert tables.attributes.columns.tolist() == ["id", "aridity"]
    assert (tables.attributes["aridity"] == tables.attributes["id"]).all()
    assert tables.gauges["STAID"].tolist() == ["01010101"]  # only the listed gauge
    assert tables.gauges["drain_sqkm"].tolist() == [12.5]
    assert tables.gauges["lat"].tolist() == [40.0]


def test_older_layer_names_and_rl_gages(tmp_path):
    ids, to_ids = dendritic_network(30, n_basins=1, window=3, seed=1)
    path = write_hydrofabric_gpkg(
        tmp_path / "old.gpkg",
        ids,
        to_ids,
        None,
        attribute_layer="flowpath_attributes",
        length_column="length_m",
        network_layer=False,
        divide_attributes=False,
    )
    attrs = gpd.read_file(path, layer="flowpath_attributes", engine="pyogrio")
    attrs["rl_gages"] = pd.Series([None] * len(attrs), dtype="object")
    attrs.loc[0, "rl_gages"] = "03030303"
    attrs.drop(columns="geometry", errors="ignore").pipe(
        lambda df: write_layers(
            tmp_path / "old2.gpkg",
            {
                "flowpaths": gpd.read_file(path, layer="flowpaths", engine="pyogrio"),
                "nexus": gpd.read_file(path, layer="nexus", engine="pyogrio"),
                "flowpath_attributes": pd.DataFrame(df),
            },
        )
    )
    tables = convert_hydrofabric(tmp_path / "old2.gpkg")
    reach = int(parse_prefixed_ids(attrs["id"].iloc[[0]], ("wb",), "t")[0])
    target = to_ids[ids == reach][0]
    siblings = ids[to_ids == target] if target else np.array([reach])
    assert tables.gauges["STAID"].tolist() == ["03030303"]
    assert sorted(tables.gauges["reach_ids"].iloc[0]) == sorted(siblings.tolist())


# ----------------------------------------------------------------------------- bad inputs


def _tiny(
    tmp_path: Path,
    flow_toid=("nex-2", "tnx-9"),
    nex=(("nex-2", "wb-2"),),
    attr_layer="flowpath-attributes",
    attr_drop=(),
) -> Path:
    lines = shapely.linestrings([[[0, 0], [1, 1]], [[1, 1], [2, 2]]])
    flowpaths = gpd.GeoDataFrame(
        {"id": ["wb-1", "wb-2"], "toid": list(flow_toid)}, geometry=lines, crs="EPSG:5070"
    )
    nexus = gpd.GeoDataFrame(
        {"id": [n for n, _ in nex], "toid": [t for _, t in nex]},
        geometry=shapely.points(np.zeros((len(nex), 2))),
        crs="EPSG:5070",
    )
    attrs = pd.DataFrame({"id": ["wb-1", "wb-2"], "Length_m": [10.0, 20.0], "So": [0.01, 0.02]})
    return write_layers(
        tmp_path / "tiny.gpkg",
        {"flowpaths": flowpaths, "nexus": nexus, attr_layer: attrs.drop(columns=list(attr_drop))},
    )


def test_tiny_fabric_converts(tmp_path):
    tables = convert_hydrofabric(_tiny(tmp_path))
    assert tables.reaches["to_id"].tolist() == [2, 0]  # tnx-9 absent: terminal -> outlet
    assert tables.reaches["x"].tolist() == [0.3, 0.3]  # no MusX: default
    assert tables.reaches["top_width"].isna().all()


def test_wrong_layer_name_lists_layers(tmp_path):
    path = _tiny(tmp_path, attr_layer="channel_properties")
    with pytest.raises(HydrofabricError, match=r"flowpath attributes.*channel_properties"):
        convert_hydrofabric(path)


def test_missing_column_is_named(tmp_path):
    with pytest.raises(HydrofabricError, match=r"lacks column\(s\) So"):
        convert_hydrofabric(_tiny(tmp_path, attr_drop=("So",)))


def test_unknown_nexus_is_named(tmp_path):
    with pytest.raises(HydrofabricError, match=r"nex-404.*wb-2"):
        convert_hydrofabric(_tiny(tmp_path, flow_toid=("nex-2", "nex-404")))


def test_cycle_is_named(tmp_path):
    path = _tiny(tmp_path, flow_toid=("nex-2", "nex-1"), nex=(("nex-2", "wb-2"), ("nex-1", "wb-1")))
    with pytest.raises(ValueError, match=r"cycles.*1.*2"):
        convert_hydrofabric(path)


def test_bad_ids_are_named():
    with pytest.raises(HydrofabricError, match="cat-7"):
        parse_prefixed_ids(pd.Series(["wb-1", "cat-7"]), ("wb",), "flowpaths.id")


def test_cli_fixture_with_stores(tmp_path):

    from ddr_pipeline.data import io
    from ddr_pipeline.ingest import convert_hydrofabric
    from ddr_pipeline.ingest.stores import StoreError

    from .generators import daily_store, write_icechunk_store
    cats = np.array(["cat-10236", "cat-10237"], dtype=object)
    write_icechunk_store(daily_store("Qr", "divide_id", cats, "1981-01-01", 60), tmp_path / "qr")
    pd.DataFrame(
        {"divide_id": ["cat-10236", "cat-10237", "cat-10245"], "aridity": [1.0, 2.0, 3.0]}
    ).to_csv(tmp_path / "attrs.csv", index=False)
    out = tmp_path / "hf"
    argv = [
        str(FIXTURE),
        "--out",
        str(out),
        "--lateral-inflow",
        str(tmp_path / "qr"),
        "--start",
        "1981-02-01",
        "--end",
        "1981-02-10",
        "--attributes",
        str(tmp_path / "attrs.csv"),
    ]
    with pytest.raises(StoreError, match=r"1 divides absent.*10245"):
        convert_hydrofabric.main([*argv, "--missing-error"])
    convert_hydrofabric.main(argv)
    qr = io.read_zarr(out / "lateral_inflow.zarr")
    assert qr["divide_id"].to_numpy().tolist() == [10236, 10237, 10245]
    assert float(qr["Qr"].sel(divide_id=10245).max()) == pytest.approx(0.001)
    assert io.read_table(out / "attributes.parquet").set_index("id")["aridity"].to_dict() == {
        10236: 1.0,
        10237: 2.0,
        10245: 3.0,
    }
