"""DDR-compatible COO adjacency store: layout, lower-triangularity, round trip."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import zarr

from ddr_pipeline.ingest.adjacency import (
    AdjacencyError,
    read_adjacency,
    read_gauge_subsets,
    write_adjacency,
)
from ddr_pipeline.network import RiverNetwork

from .generators import dendritic_network


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    ids, to_ids = dendritic_network(600, n_basins=5, window=6, seed=7)
    reaches = pd.DataFrame(
        {
            "id": ids,
            "to_id": to_ids,
            "length_m": ids * 10.0,
            "slope": 0.001,
            "x": 0.3,
            "top_width": np.nan,
        }
    )
    net = RiverNetwork.from_ids(ids, to_ids)
    confluence = ids[np.argmax(np.diff(net.up_ptr))]
    headwater = ids[np.flatnonzero(net.is_headwater)[0]]
    gauges = pd.DataFrame(
        {
            "STAID": ["01000000", "02000000", "03000000"],
            "reach_ids": [
                [int(confluence)],
                [int(headwater)],
                [int(i) for i in ids[to_ids == confluence]],
            ],
        }
    )
    path = tmp_path_factory.mktemp("adj") / "merit_adjacency.zarr"
    write_adjacency(path, reaches, gauges, geodataset="merit")
    return path, reaches, gauges, net


def test_layout_and_lower_triangular(store):
    path, reaches, _, _ = store
    root = zarr.open_group(str(path), mode="r")
    n = len(reaches)
    assert root.attrs["format"] == "COO" and root.attrs["shape"] == [n, n]
    assert root.attrs["geodataset"] == "merit"
    rows, cols = root["indices_0"][...], root["indices_1"][...]
    assert root["values"].dtype == np.uint8 and (root["values"][...] == 1).all()
    assert rows.size == int((reaches["to_id"] != 0).sum())
    assert (rows > cols).all()  # strictly lower-triangular: upstream before downstream
    assert "top_width" not in root  # all-NaN channel columns are not stored
    np.testing.assert_allclose(root["length_m"][...], root["order"][...] * 10.0)


def test_round_trip_network(store):
    path, reaches, _, _ = store
    adj = read_adjacency(path)
    back = pd.Series(adj.to_ids, index=adj.ids)
    assert back.loc[reaches["id"]].tolist() == reaches["to_id"].tolist()
    assert adj.geodataset == "merit"
    np.testing.assert_allclose(adj.channel["slope"], 0.001, rtol=1e-6)


def test_gauge_subgroups_match_upstream_closure(store):
    path, _, gauges, net = store
    order = read_adjacency(path).ids
    subsets = read_gauge_subsets(path)
    assert sorted(subsets) == gauges["STAID"].tolist()
    root = zarr.open_group(str(path), mode="r")
    for staid, reach_ids in zip(gauges["STAID"], gauges["reach_ids"], strict=True):
        expected = net.ids[net.upstream_closure(net.index_of(reach_ids))]
        assert sorted(order[subsets[staid]]) == sorted(expected)
        group = root[staid]
        assert sorted(group["order"][...]) == sorted(expected)
        assert order[group.attrs["gage_idx"]] == reach_ids[0]
        assert group.attrs["gage_catchment"] == reach_ids[0]
    assert root["02000000"]["indices_0"].shape == (0,)  # headwater gauge: no edges
    assert len(root["03000000"].attrs["gage_idxs"]) == len(gauges["reach_ids"].iloc[2])


def test_lynker_catchment_names_and_no_gauges(tmp_path):
    reaches = gpd.GeoDataFrame({"id": [10, 20, 30], "to_id": [20, 30, 0]})
    path = tmp_path / "lynker.zarr"
    write_adjacency(
        path, reaches, pd.DataFrame({"STAID": ["01069700"], "reach_ids": [[20]]}), "lynker"
    )
    root = zarr.open_group(str(path), mode="r")
    assert root["01069700"].attrs["gage_catchment"] == "wb-20"
    assert root["order"][...].tolist() == [10, 20, 30]
    write_adjacency(tmp_path / "plain.zarr", reaches, None, "merit")
    assert read_gauge_subsets(tmp_path / "plain.zarr") == {}


def test_upper_triangular_store_is_rejected(store, tmp_path):
    path, *_ = store
    bad = tmp_path / "bad.zarr"
    root = zarr.open_group(str(bad), mode="w", zarr_format=3)
    src = zarr.open_group(str(path), mode="r")
    root.create_array("indices_0", data=src["indices_1"][...])  # transposed
    root.create_array("indices_1", data=src["indices_0"][...])
    root.create_array("values", data=src["values"][...])
    root.create_array("order", data=src["order"][...])
    root.attrs.update(dict(src.attrs))
    with pytest.raises(AdjacencyError, match="not strictly lower-triangular"):
        read_adjacency(bad)


def test_unknown_gauge_reach_is_named(tmp_path):
    reaches = pd.DataFrame({"id": [1, 2], "to_id": [2, 0]})
    gauges = pd.DataFrame({"STAID": ["01000000"], "reach_ids": [[5]]})
    with pytest.raises(KeyError, match="5"):
        write_adjacency(tmp_path / "x.zarr", reaches, gauges, "merit")
    assert not (tmp_path / "x.zarr").exists()  # atomic: nothing half-written
