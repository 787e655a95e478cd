"""``XarrayZarrDataset``: round trip, versioning, atomic saves, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from kedro.io import DataCatalog
from kedro.io.core import DatasetError, Version, generate_timestamp

from ddr_pipeline.project.datasets import OptionalParquetDataset, XarrayZarrDataset


def _dataset(scale: float = 1.0) -> xr.Dataset:
    time = pd.date_range("2000-01-01", periods=4, freq="D")
    return xr.Dataset(
        {
            "q": (("gage_id", "time"), scale * np.arange(8, dtype=np.float32).reshape(2, 4)),
            "length": ("reach_id", np.array([1.5, 2.5])),
        },
        coords={"gage_id": ["01234567", "07654321"], "time": time, "reach_id": [10, 20]},
        attrs={"title": "test"},
    )


def test_round_trip(tmp_path: Path):
    path = tmp_path / "store.zarr"
    ds = XarrayZarrDataset(filepath=str(path))
    assert not ds.exists()
    ds.save(_dataset())
    assert ds.exists()
    loaded = ds.load()
    xr.testing.assert_identical(loaded, _dataset())
    assert loaded["gage_id"].dtype.kind == "U"  # plain numpy strings, not StringDType
    assert not list(tmp_path.glob(".store.zarr.*"))  # no temporary leftovers


def test_save_overwrites_previous_store(tmp_path: Path):
    ds = XarrayZarrDataset(filepath=str(tmp_path / "store.zarr"))
    ds.save(_dataset())
    ds.save(_dataset(scale=2.0).drop_vars("length"))
    loaded = ds.load()
    assert "length" not in loaded
    np.testing.assert_array_equal(loaded["q"].values, _dataset(scale=2.0)["q"].values)


def test_lazy_load_reads_on_access(tmp_path: Path):
    XarrayZarrDataset(filepath=str(tmp_path / "s.zarr")).save(_dataset())
    lazy = XarrayZarrDataset(filepath=str(tmp_path / "s.zarr"), lazy=True).load()
    assert not lazy["q"].variable._in_memory
    np.testing.assert_array_equal(lazy["q"].values, _dataset()["q"].values)


def test_failed_save_keeps_the_previous_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "store.zarr"
    ds = XarrayZarrDataset(filepath=str(path))
    ds.save(_dataset())

    def broken_to_zarr(self, store, **kwargs):
        Path(store).mkdir(parents=True)
        (Path(store) / "zarr.json").write_text("{partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", broken_to_zarr)
    with pytest.raises(DatasetError, match="disk full"):
        ds.save(_dataset(scale=3.0))
    monkeypatch.undo()
    xr.testing.assert_identical(ds.load(), _dataset())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]


def test_versioned_saves_keep_every_version(tmp_path: Path):
    path = tmp_path / "store.zarr"
    first, second = "2000-01-01T00.00.00.000Z", "2000-01-02T00.00.00.000Z"
    XarrayZarrDataset(filepath=str(path), version=Version(None, first)).save(_dataset())
    XarrayZarrDataset(filepath=str(path), version=Version(None, second)).save(_dataset(2.0))
    assert (path / first / "store.zarr").is_dir() and (path / second / "store.zarr").is_dir()
    latest = XarrayZarrDataset(filepath=str(path), version=Version(None, None)).load()
    pinned = XarrayZarrDataset(filepath=str(path), version=Version(first, None)).load()
    np.testing.assert_array_equal(latest["q"].values, _dataset(2.0)["q"].values)
    xr.testing.assert_identical(pinned, _dataset())


def test_versioned_save_refuses_to_overwrite_a_version(tmp_path: Path):
    version = Version(None, generate_timestamp())
    ds = XarrayZarrDataset(filepath=str(tmp_path / "s.zarr"), version=version)
    ds.save(_dataset())
    with pytest.raises(DatasetError, match="must not exist"):
        ds.save(_dataset())


def test_catalog_entry_and_describe(tmp_path: Path):
    catalog = DataCatalog.from_config(
        {
            "store": {
                "type": "ddr_pipeline.project.datasets.XarrayZarrDataset",
                "filepath": str(tmp_path / "s.zarr"),
                "save_args": {"zarr_format": 2},
                "metadata": {"kedro-viz": {"layer": "raw"}},
            }
        }
    )
    catalog.save("store", _dataset())
    assert (tmp_path / "s.zarr" / ".zgroup").exists()  # save_args reached to_zarr
    xr.testing.assert_identical(catalog.load("store"), _dataset())
    text = str(catalog.get("store"))
    assert "s.zarr" in text and "zarr_format" in text


def test_errors(tmp_path: Path):
    ds = XarrayZarrDataset(filepath=str(tmp_path / "missing.zarr"))
    with pytest.raises(DatasetError, match="missing.zarr"):
        ds.load()
    with pytest.raises(DatasetError, match="xarray.Dataset"):
        ds.save(pd.DataFrame({"a": [1]}))


def test_an_optional_parquet_table_loads_empty_when_absent(tmp_path):
    dataset = OptionalParquetDataset(filepath=str(tmp_path / "lakes.parquet"))
    assert dataset.exists()  # the run's preflight must not report it missing
    assert dataset.load().empty
    pd.DataFrame({"lake_id": [1]}).to_parquet(tmp_path / "lakes.parquet")
    assert dataset.load()["lake_id"].tolist() == [1]
