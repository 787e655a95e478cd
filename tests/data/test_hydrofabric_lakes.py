"""Hydrofabric lake layers -> lakes.parquet: the committed fixture (an empty lake layer), generated
v2.2-style GeoPackages (``lakes`` + flowpath ``waterbody``), and the named errors."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from ddr_pipeline.data import io, schema
from ddr_pipeline.ingest import convert_hydrofabric
from ddr_pipeline.ingest.hydrofabric import HydrofabricError
from ddr_pipeline.ingest.hydrofabric_lakes import hydrofabric_lakes

from .generators import write_layers

FIXTURE = Path(__file__).parent / "hydrofabric" / "gauge_01069700.gpkg"
REACHES = np.array([1, 2, 3])


def lake_layer(**overrides: object) -> pd.DataFrame:
    """A v2.2 ``lakes`` layer: one lake, repeated per hydrolocation, without ``Dam_Length``."""
    data: dict[str, object] = {
        "hl_link": [5001, 5001],
        "hl_reference": ["WBOut", "WBIn"],
        "LkArea": [1.5, 1.5],
        "LkMxE": [110.0, 110.0],
        "WeirE": [109.0, 109.0],
        "WeirC": [0.4, 0.4],
        "WeirL": [10.0, 10.0],
        "OrificeE": [100.0, 100.0],
        "OrificeC": [0.1, 0.1],
        "OrificeA": [1.0, 1.0],
        "ifd": [0.9, 0.9],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def fabric(tmp_path: Path, waterbody: list[object], lakes: pd.DataFrame) -> Path:
    """wb-1 -> wb-2 -> wb-3 -> outlet; ``waterbody`` per flowpath; a ``lakes`` layer."""
    lines = shapely.linestrings([[[0, 0], [1, 1]], [[1, 1], [2, 2]], [[2, 2], [3, 3]]])
    flowpaths = gpd.GeoDataFrame(
        {
            "id": ["wb-1", "wb-2", "wb-3"],
            "toid": ["nex-2", "nex-3", "tnx-9"],
            "waterbody": waterbody,
        },
        geometry=lines,
        crs="EPSG:5070",
    )
    nexus = gpd.GeoDataFrame(
        {"id": ["nex-2", "nex-3"], "toid": ["wb-2", "wb-3"]},
        geometry=shapely.points(np.zeros((2, 2))),
        crs="EPSG:5070",
    )
    attrs = pd.DataFrame(
        {"id": ["wb-1", "wb-2", "wb-3"], "Length_m": [10.0, 20.0, 30.0], "So": [0.01] * 3}
    )
    layers = {"flowpaths": flowpaths, "nexus": nexus, "flowpath-attributes": attrs, "lakes": lakes}
    return write_layers(tmp_path / "lakes.gpkg", layers)


def test_committed_fixture_has_an_empty_lake_layer() -> None:
    assert hydrofabric_lakes(FIXTURE, np.array([10236, 10237, 10245])) is None


def test_v22_lake_on_its_flowpath_with_nwm_defaults(tmp_path: Path) -> None:
    path = fabric(tmp_path, [None, "5001", None], lake_layer())
    with pytest.raises(ValueError, match=r"'dam_length' must be finite .*\[5001\]"):
        hydrofabric_lakes(path, REACHES)  # v2.2 has no Dam_Length: an error, never a channel
    table = hydrofabric_lakes(path, REACHES, nwm_defaults=True)
    assert table is not None and table["lake_id"].tolist() == [5001]
    assert table["reach_id"].tolist() == [2] and table["dam_length"].tolist() == [10.0]
    assert table["initial_elevation"].iloc[0] == pytest.approx(109.0)
    assert table["area_km2"].iloc[0] == 1.5 and table["source"].iloc[0] == "hydrofabric lakes.gpkg"


def test_cli_writes_the_lakes_table(tmp_path: Path) -> None:
    path = fabric(tmp_path, [None, "5001", None], lake_layer(Dam_Length=[50.0, 50.0]))
    convert_hydrofabric.main([str(path), "--out", str(tmp_path / "out")])
    table = io.read_table(tmp_path / "out" / schema.LAKES_FILE)
    assert table[["lake_id", "reach_id", "dam_length"]].values.tolist() == [[5001, 2, 50.0]]


def test_lake_spanning_flowpaths_is_named(tmp_path: Path) -> None:
    path = fabric(tmp_path, [None, "5001", "5001"], lake_layer(Dam_Length=[50.0, 50.0]))
    with pytest.raises(HydrofabricError, match=r"spanning several flowpaths.*5001: \[2, 3\]"):
        hydrofabric_lakes(path, REACHES)


def test_waterbody_without_lake_row_is_an_error_or_explicitly_channels(tmp_path: Path) -> None:
    path = fabric(tmp_path, ["7", "5001", None], lake_layer(Dam_Length=[50.0, 50.0]))
    with pytest.raises(HydrofabricError, match=r"waterbodies \[7\] that the lake layer"):
        hydrofabric_lakes(path, REACHES)
    table = hydrofabric_lakes(path, REACHES, missing="channel")
    assert table is not None and table["lake_id"].tolist() == [5001]


def test_lake_layer_without_id_column_is_named(tmp_path: Path) -> None:
    path = fabric(tmp_path, [None, "5001", None], lake_layer().drop(columns="hl_link"))
    with pytest.raises(HydrofabricError, match="none of the lake id columns hl_link, lake_id"):
        hydrofabric_lakes(path, REACHES)
