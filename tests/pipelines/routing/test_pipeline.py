"""Tests of the routing pipeline on tiny synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from ddr_pipeline.pipelines.routing.pipeline import create_pipeline
from ddr_pipeline.project.datasets import XarrayZarrDataset
from pipelines.evaluation import synthetic as syn


def run_routing(
    tmp_path: Path, inputs: xr.Dataset | None = None, training: dict | None = None, **overrides
) -> dict:
    """Run the pipeline on the synthetic inputs (or ``inputs``) with a checkpoint of the
    ``training`` parameters (default: ``syn.training_params()``)."""
    torch.manual_seed(0)  # the same weights whatever the training parameters
    syn.write_checkpoint(tmp_path / "models", training)
    params = {
        "geodataset": "drb",
        "run_name": "synthetic-run",
        "model": {
            "models_dir": str(tmp_path / "models"),
            "checkpoint": None,
            "mlflow_model_uri": None,
        },
        "period": None,
        "warmup_days": 0,
        "target_reach_ids": [],
        "chunk_days": 91,
        "device": "cpu",
        "summary_reach_ids": [],
        **overrides,
    }
    catalog = DataCatalog()
    catalog["drb.model_inputs"] = syn.model_inputs() if inputs is None else inputs
    catalog["drb.normalization_stats"] = {"attributes": {}, "forcings": {}}
    catalog["drb.model_gauges"] = syn.gauges_table()
    catalog["params:routing"] = params
    for key, value in params.items():
        catalog[f"params:routing.{key}"] = value
    pipeline = create_pipeline()
    for name in pipeline.all_outputs():
        catalog[name] = syn.KeptMemoryDataset()
    catalog["routing.discharge"] = XarrayZarrDataset(filepath=str(tmp_path / "routed.zarr"))
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> dict:
    return run_routing(tmp_path_factory.mktemp("routing_whole"))


def test_domain_wide_discharge_written(whole: dict) -> None:
    ds = whole["routing.discharge"]
    q = ds["discharge"]
    assert q.dims == ("reach_id", "time")
    assert q.sizes == {"reach_id": 7, "time": 91}
    assert q.attrs["units"] == "m3 s-1"
    assert np.isfinite(q.values).all() and (q.values > 0).all()
    assert isinstance(whole["routing.plot_summary"], Figure)


def test_chunks_of_10_days_equal_the_whole_period(whole: dict, tmp_path: Path) -> None:
    chunked = run_routing(tmp_path, chunk_days=10)["routing.discharge"]["discharge"]
    np.testing.assert_allclose(
        chunked.values, whole["routing.discharge"]["discharge"].values, rtol=2e-5, atol=1e-5
    )


def test_target_reaches_route_their_upstream_closure(whole: dict, tmp_path: Path) -> None:
    out = run_routing(tmp_path, target_reach_ids=[3])
    q = out["routing.discharge"]["discharge"]
    assert sorted(q["reach_id"].values.tolist()) == [1, 2, 3]
    # an upstream sub-domain is unaffected by the rest of the network
    full = whole["routing.discharge"]["discharge"].sel(reach_id=[1, 2, 3], time=q["time"])
    np.testing.assert_allclose(q.sel(reach_id=[1, 2, 3]).values, full.values, rtol=1e-4)


def test_warmup_days_are_routed_but_not_written(tmp_path: Path) -> None:
    out = run_routing(tmp_path, warmup_days=20, period=["1979-12-01", "1979-12-31"])
    ds = out["routing.discharge"]
    assert ds.attrs["routing_started"] == "1979-11-11"
    assert str(ds["time"].values[0])[:10] == "1979-12-01"
    assert ds.sizes["time"] == 31


def test_assimilation_through_the_pipeline(whole: dict, tmp_path: Path) -> None:
    """routing.assimilation: the gauges' daily series nudged in, the correction per gauge out;
    a forecast from 1980-01-20 reports its skill by lead day."""
    da = {"enabled": True, "gauges": ["01000003"], "assimilate_until": "1980-01-20"}
    ds = run_routing(tmp_path, assimilation=da)["routing.discharge"]
    assert ds["assimilation_correction"].sizes == {"gage_id": 1, "time": 91}
    assert float(np.abs(ds["assimilation_correction"]).max()) > 0
    assert ds["forecast_n_gauges"].sizes == {"lead_day": 11}  # Jan 20 .. Jan 30
    assert not np.allclose(ds["discharge"], whole["routing.discharge"]["discharge"])


def test_lakes_route_at_their_reach_and_their_end_level_is_written(tmp_path: Path) -> None:
    """routing.lakes on: the lake reach's discharge differs from the channel routing's (finite),
    reaches upstream of it do not, and the lake's end elevation joins the output."""
    from test_lakes_rollout import LAKE_REACH_ID, _lakes_table

    from ddr_pipeline.data.model_inputs import lake_variables

    inputs = syn.model_inputs().assign(lake_variables(_lakes_table()))
    on = syn.training_params()
    on["routing"] = {"lakes": {"enabled": True}}
    lakes = run_routing(tmp_path / "on", inputs, on)["routing.discharge"]
    channel = run_routing(tmp_path / "off", inputs)["routing.discharge"]
    q_lake = lakes["discharge"].sel(reach_id=LAKE_REACH_ID).values
    assert np.isfinite(lakes["discharge"].values).all()
    assert not np.allclose(q_lake, channel["discharge"].sel(reach_id=LAKE_REACH_ID).values)
    upstream = [1, 2]
    np.testing.assert_array_equal(
        lakes["discharge"].sel(reach_id=upstream).values,
        channel["discharge"].sel(reach_id=upstream).values,
    )
    level = lakes["lake_elevation_end"]
    assert level.dims == ("lake_reach_id",) and level["lake_reach_id"].values.tolist() == [3]
    assert level.attrs["units"] == "m" and level.attrs["time"] == "1980-01-31T00:00:00"
    assert np.isfinite(level.values).all() and float(level.values[0]) != 104.0
    assert "lake_elevation_end" not in channel
    # basins on two ranks: the same discharge and end levels
    ranks = run_routing(tmp_path / "ranks", inputs, on, nproc_per_node=2)["routing.discharge"]
    np.testing.assert_allclose(ranks["discharge"], lakes["discharge"], rtol=1e-5)
    np.testing.assert_allclose(ranks["lake_elevation_end"], level, rtol=1e-12)
