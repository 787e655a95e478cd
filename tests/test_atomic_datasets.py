"""Atomic file datasets: round trips, versioning, and interrupted saves leaving old files intact."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from kedro.io import DatasetError, Version
from kedro_datasets.json import json_dataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_mlflow.io.artifacts import MlflowArtifactDataset

from ddr_pipeline.project.datasets import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicMatplotlibDataset,
    AtomicParquetDataset,
)

PARTIAL = b"PARTIAL-"


class Boom(RuntimeError):
    """Raised by the sabotaged writers half-way through a save."""


def _frame(scale: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"gauge_id": pd.array(["g01", "g02"], dtype="str"), "nse": [0.5 * scale, 0.7 * scale]}
    )


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


def _partial_to_file(target: Any) -> None:
    """Write a few bytes to ``target`` (a path or an open file), then fail."""
    if hasattr(target, "write"):
        try:
            target.write(PARTIAL)
        except TypeError:  # a text-mode file
            target.write(PARTIAL.decode())
    else:
        Path(target).write_bytes(PARTIAL)
    raise Boom("serialisation failed half-way")


@pytest.mark.parametrize("cls", [AtomicParquetDataset, AtomicCSVDataset])
def test_frame_round_trip(tmp_path: Path, cls: type) -> None:
    path = tmp_path / "out" / ("t.parquet" if cls is AtomicParquetDataset else "t.csv")
    kwargs = {"save_args": {"index": False}} if cls is AtomicCSVDataset else {}
    ds = cls(filepath=str(path), **kwargs)
    ds.save(_frame(1.0))
    ds.save(_frame(2.0))
    loaded = ds.load()
    pd.testing.assert_frame_equal(loaded, _frame(2.0), check_dtype=False)
    assert _leftovers(tmp_path) == []


def test_json_round_trip(tmp_path: Path) -> None:
    ds = AtomicJSONDataset(filepath=str(tmp_path / "s.json"), save_args={"indent": 2})
    ds.save({"mean": [1.0, 2.0], "name": "x"})
    assert ds.load() == {"mean": [1.0, 2.0], "name": "x"}
    assert json.loads((tmp_path / "s.json").read_text()) == {"mean": [1.0, 2.0], "name": "x"}
    assert _leftovers(tmp_path) == []


def test_versioned_json(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    first = AtomicJSONDataset(filepath=str(path), version=Version(None, "2024-01-01T00.00.00.000Z"))
    first.save({"v": 1})
    second = AtomicJSONDataset(
        filepath=str(path), version=Version(None, "2024-01-02T00.00.00.000Z")
    )
    second.save({"v": 2})
    assert (path / "2024-01-01T00.00.00.000Z" / "stats.json").is_file()
    assert AtomicJSONDataset(filepath=str(path), version=Version(None, None)).load() == {"v": 2}
    pinned = Version("2024-01-01T00.00.00.000Z", None)
    assert AtomicJSONDataset(filepath=str(path), version=pinned).load() == {"v": 1}
    with pytest.raises(DatasetError, match="must not exist"):
        second.save({"v": 3})
    assert _leftovers(tmp_path) == []


def test_versioned_json_failed_save_is_not_a_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "stats.json"
    AtomicJSONDataset(filepath=str(path), version=Version(None, "2024-01-01T00.00.00.000Z")).save(
        {"v": 1}
    )
    monkeypatch.setattr(json_dataset.json, "dump", lambda data, f, **_: _partial_to_file(f))
    broken = AtomicJSONDataset(
        filepath=str(path), version=Version(None, "2024-01-02T00.00.00.000Z")
    )
    with pytest.raises(DatasetError, match="half-way"):
        broken.save({"v": 2})
    assert AtomicJSONDataset(filepath=str(path), version=Version(None, None)).load() == {"v": 1}
    assert _leftovers(tmp_path) == []


def _sabotage_parquet(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(pd.DataFrame, "to_parquet", lambda self, f, **_: _partial_to_file(f))


def _sabotage_csv(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(pd.DataFrame, "to_csv", lambda self, path_or_buf, **_: _partial_to_file(path_or_buf))


def _sabotage_json(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(json_dataset.json, "dump", lambda data, f, **_: _partial_to_file(f))


def _sabotage_png(mp: pytest.MonkeyPatch) -> None:
    def write_partial(self: MatplotlibDataset, full_key_path: str, plot: Any) -> None:
        with self._fs.open(full_key_path, mode="wb") as f:
            _partial_to_file(f)

    mp.setattr(MatplotlibDataset, "_save_to_fs", write_partial)


def _figure() -> Any:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


CASES: list[tuple[type, str, Callable[[], Any], Callable[[pytest.MonkeyPatch], None]]] = [
    (AtomicParquetDataset, "t.parquet", lambda: _frame(1.0), _sabotage_parquet),
    (AtomicCSVDataset, "t.csv", lambda: _frame(1.0), _sabotage_csv),
    (AtomicJSONDataset, "t.json", lambda: {"a": 1}, _sabotage_json),
    (AtomicMatplotlibDataset, "t.png", _figure, _sabotage_png),
]


@pytest.mark.parametrize(("cls", "name", "make", "sabotage"), CASES)
def test_failed_save_keeps_previous_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cls: type,
    name: str,
    make: Callable[[], Any],
    sabotage: Callable[[pytest.MonkeyPatch], None],
) -> None:
    path = tmp_path / name
    ds = cls(filepath=str(path))
    ds.save(make())
    before = path.read_bytes()
    assert before
    sabotage(monkeypatch)
    with pytest.raises(DatasetError, match="half-way"):
        ds.save(make())
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_stock_dataset_would_truncate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard for the test above: the sabotage really does corrupt a non-atomic save."""
    path = tmp_path / "t.json"
    json_dataset.JSONDataset(filepath=str(path)).save({"a": 1})
    _sabotage_json(monkeypatch)
    with pytest.raises(DatasetError):
        json_dataset.JSONDataset(filepath=str(path)).save({"a": 2})
    assert path.read_bytes() == PARTIAL


def test_matplotlib_round_trip_and_dict(tmp_path: Path) -> None:
    single = AtomicMatplotlibDataset(filepath=str(tmp_path / "p.png"))
    single.save(_figure())
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    many = AtomicMatplotlibDataset(filepath=str(tmp_path / "plots"))
    many.save({"a.png": _figure(), "b.png": _figure()})
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["a.png", "b.png"]
    assert _leftovers(tmp_path) == []


def test_remote_protocol_uses_parent_save() -> None:
    ds = AtomicJSONDataset(filepath="memory://ddr_atomic_test/s.json")
    ds.save({"x": 1})
    assert ds.load() == {"x": 1}
    assert ds._fs.exists(str(ds._filepath))
    assert [p for p in ds._fs.find("/") if ".tmp-" in p] == []
    ds._fs.rm(str(ds._filepath))


def test_mlflow_artifact_wrapper_saves_atomically(tmp_path: Path) -> None:
    ds = MlflowArtifactDataset(
        dataset={
            "type": "ddr_pipeline.project.datasets.AtomicJSONDataset",
            "filepath": str(tmp_path / "s.json"),
        }
    )
    ds._logging_activated = False
    assert isinstance(ds, AtomicJSONDataset)
    ds.save({"y": 2})
    assert ds.load() == {"y": 2}
    assert _leftovers(tmp_path) == []
