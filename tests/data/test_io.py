"""Round trips and atomic writes of the schema readers/writers."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data import io, schema

TIME = pd.date_range("1980-01-01", periods=5, freq="D")


def reaches() -> gpd.GeoDataFrame:
    frame = pd.DataFrame(
        {
            "id": np.array([10, 20, 30], dtype=np.int64),
            "to_id": np.array([30, 30, 0], dtype=np.int64),
            "length_m": [1.0, 2.0, 3.0],
            "slope": [0.1, 0.2, 0.3],
            "x": [0.2, 0.2, 0.2],
            "geometry_approximate": [True, True, True],
        }
    )
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy([1, 2, 3], [4, 5, 6]), crs=4326)


def gauges() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "STAID": ["01234567", "01234568"],
            "reach_ids": [[10], [20, 30]],
            "drain_sqkm": [1.5, 2.5],
            "lat": [40.0, 41.0],
            "lon": [-75.0, -74.0],
            "name": ["A", "B"],
        }
    )


def stores() -> dict[str, xr.Dataset]:
    rng = np.random.default_rng(0)
    ids = np.array([10, 20, 30], dtype=np.int64)
    field = rng.random((3, 5)).astype(np.float32)
    obs = rng.random((2, 5)).astype(np.float32)
    obs[0, 1] = np.nan
    qr = xr.Dataset(
        {"Qr": (("divide_id", "time"), field, {"units": "m3 s-1"})},
        coords={"divide_id": ids, "time": TIME},
        attrs={"source": "test"},
    )
    observations = xr.Dataset(
        {"streamflow": (("gage_id", "time"), obs, {"units": "m3 s-1"})},
        coords={"gage_id": np.array(["01234567", "01234568"]), "time": TIME},
    )
    forcings = xr.Dataset(
        {v: (("divide_id", "time"), field * i) for i, v in enumerate(schema.FORCING_VARS, 1)},
        coords={"divide_id": ids, "time": TIME},
    )
    return {
        schema.LATERAL_INFLOW_STORE: qr,
        schema.OBSERVATIONS_STORE: observations,
        schema.FORCINGS_STORE: forcings,
    }


def write_folder(root: Path, with_reference: bool) -> None:
    io.write_reaches(reaches(), root / schema.REACHES_FILE)
    io.write_table(gauges(), root / schema.GAUGES_FILE)
    io.write_table(
        pd.DataFrame({"id": [10, 20, 30], "a": [1.0, 2.0, 3.0]}), root / "attributes.parquet"
    )
    for name, ds in stores().items():
        io.write_zarr(ds, root / name)
    if with_reference:
        ref = stores()[schema.LATERAL_INFLOW_STORE].rename({"Qr": "outflow"})
        io.write_zarr(ref, root / schema.REFERENCE_STORE)


def test_reaches_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    io.write_reaches(reaches(), path)
    back = io.read_reaches(path)
    assert back.crs.to_epsg() == 4326
    pd.testing.assert_frame_equal(pd.DataFrame(back), pd.DataFrame(reaches()))


def test_gauges_round_trip_keeps_int64_lists(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "g.parquet"
    io.write_table(gauges(), path)
    assert str(pq.read_schema(path).field("reach_ids").type) == "list<element: int64>"
    back = io.read_table(path)
    assert back["reach_ids"].tolist() == [[10], [20, 30]]
    assert back["STAID"].tolist() == ["01234567", "01234568"]
    assert back["drain_sqkm"].dtype == np.float64


@pytest.mark.parametrize("name", list(stores()))
def test_zarr_round_trip(tmp_path: Path, name: str) -> None:
    ds = stores()[name]
    io.write_zarr(ds, tmp_path / name)
    back = io.read_zarr(tmp_path / name)
    xr.testing.assert_identical(back, ds)
    assert back["time"].dtype == np.dtype("datetime64[ns]")
    lazy = io.read_zarr(tmp_path / name, lazy=True)
    assert not lazy[next(iter(lazy.data_vars))].variable._in_memory
    assert back[next(iter(back.data_vars))].variable._in_memory


def test_zarr_is_v3_unconsolidated(tmp_path: Path) -> None:
    path = tmp_path / "q.zarr"
    io.write_zarr(stores()[schema.LATERAL_INFLOW_STORE], path)
    assert (path / "zarr.json").exists()
    assert '"consolidated_metadata"' not in (path / "zarr.json").read_text() or (
        '"consolidated_metadata": null' in (path / "zarr.json").read_text()
    )


def test_zarr_overwrite_is_atomic_and_clean(tmp_path: Path) -> None:
    path = tmp_path / "q.zarr"
    ds = stores()[schema.LATERAL_INFLOW_STORE]
    io.write_zarr(ds, path)
    io.write_zarr(ds * 2, path)
    xr.testing.assert_allclose(io.read_zarr(path)["Qr"], ds["Qr"] * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.zarr"]


def test_failed_write_keeps_old_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "q.zarr"
    ds = stores()[schema.LATERAL_INFLOW_STORE]
    io.write_zarr(ds, path)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", boom)
    with pytest.raises(OSError, match="disk full"):
        io.write_zarr(ds * 2, path)
    monkeypatch.undo()
    xr.testing.assert_identical(io.read_zarr(path), ds)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.zarr"]


def test_read_missing_store_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.zarr"):
        io.read_zarr(tmp_path / "nope.zarr")


def test_default_chunks_bounded() -> None:
    da = xr.DataArray(np.zeros((100_000, 3650), dtype=np.float32), dims=("divide_id", "time"))
    rows, cols = io.default_chunks(da)
    assert cols == 3650 and rows * cols * 4 <= io.TARGET_CHUNK_BYTES


@pytest.mark.parametrize("with_reference", [True, False])
def test_load_geodataset(tmp_path: Path, with_reference: bool) -> None:
    write_folder(tmp_path, with_reference)
    geo = io.load_geodataset(tmp_path)
    assert geo.reaches["id"].tolist() == [10, 20, 30]
    assert geo.gauges["reach_ids"].tolist() == [[10], [20, 30]]
    xr.testing.assert_identical(geo.observations, stores()[schema.OBSERVATIONS_STORE])
    assert (geo.reference is not None) == with_reference
    assert geo.lakes is None  # optional: absent here
    with pytest.raises(AttributeError):
        geo.reaches = reaches()  # type: ignore[misc]


def test_load_geodataset_reads_lakes_when_present(tmp_path: Path) -> None:
    write_folder(tmp_path, False)
    table = pd.DataFrame({"lake_id": [5], "reach_id": [30], "area_km2": [1.5]})
    io.write_table(table, tmp_path / schema.LAKES_FILE)
    geo = io.load_geodataset(tmp_path)
    assert geo.lakes is not None and geo.lakes["lake_id"].tolist() == [5]


def test_load_geodataset_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        io.load_geodataset(tmp_path / "missing")


def _damage(chunk: Path, how: str) -> None:
    data = bytearray(chunk.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    else:
        chunk.write_bytes(bytes(data[: len(data) // 2]))


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_chunk_fails_naming_store_variable_and_chunk(tmp_path: Path, how: str) -> None:
    """Chunks carry a CRC-32C: a flipped byte fails the read instead of changing values."""
    path = tmp_path / schema.LATERAL_INFLOW_STORE
    io.write_zarr(stores()[schema.LATERAL_INFLOW_STORE], path)
    _damage(path / "Qr" / "c" / "0" / "0", how)
    with pytest.raises(
        io.UnreadableChunkError, match=r"lateral_inflow.zarr: chunk c/0/0 of .*'Qr'"
    ):
        io.read_zarr(path)


def test_dataset_store_is_checksummed(tmp_path: Path) -> None:
    from kedro.io.core import DatasetError

    from ddr_pipeline.project.datasets import XarrayZarrDataset

    path = tmp_path / "model_inputs.zarr"
    dataset = XarrayZarrDataset(filepath=str(path))
    dataset.save(stores()[schema.FORCINGS_STORE])
    _damage(path / "P" / "c" / "0" / "0", "flip")
    with pytest.raises(DatasetError, match=r"model_inputs.zarr: chunk c/0/0 of variable 'P'"):
        dataset.load()
