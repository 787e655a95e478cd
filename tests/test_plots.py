"""Tests for ddr_pipeline.plots: every figure builds, has the expected content and saves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

from ddr_pipeline import plots
from ddr_pipeline.metrics import metrics_table

GAUGES = ["01000001", "01000002", "01000003", "01000004"]


@pytest.fixture
def arrays() -> tuple[xr.DataArray, xr.DataArray]:
    rng = np.random.default_rng(3)
    time = pd.date_range("1980-01-01", periods=60, freq="D")
    obs = rng.gamma(2.0, 5.0, size=(4, 60))
    sim = obs * np.array([1.0, 0.8, 1.3, 0.2])[:, None] + rng.normal(0, 1, obs.shape)
    coords = {"gage_id": GAUGES, "time": time}
    return (
        xr.DataArray(obs, dims=("gage_id", "time"), coords=coords),
        xr.DataArray(sim, dims=("gage_id", "time"), coords=coords),
    )


@pytest.fixture
def tables(arrays: tuple[xr.DataArray, xr.DataArray]) -> dict[str, pd.DataFrame]:
    obs, sim = arrays
    return {
        "model": metrics_table(sim.values, obs.values, GAUGES),
        "baseline": metrics_table(sim.values * 1.5, obs.values, GAUGES),
    }


def _save(fig: Figure, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000


def test_metric_cdf_has_one_line_per_model(tables: dict, tmp_path: Path) -> None:
    fig = plots.plot_metric_cdf(tables, "nse")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("model (median")
    _save(fig, tmp_path, "cdf")


def test_boxplots_have_one_panel_per_metric(tables: dict, tmp_path: Path) -> None:
    fig = plots.plot_metric_boxplots(tables)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_ylabel() for ax in visible] == list(plots.BOXPLOT_METRICS.values())
    _save(fig, tmp_path, "box")


def test_select_gauges_best_median_worst(tables: dict) -> None:
    table = tables["model"]
    picks = plots.select_gauges(table, "nse", chosen=["01000002"])
    assert picks["best"] == table["nse"].idxmax()
    assert picks["worst"] == table["nse"].idxmin()
    assert picks["chosen 01000002"] == "01000002"
    with pytest.raises(KeyError, match="99999999"):
        plots.select_gauges(table, "nse", chosen=["99999999"])


def test_hydrographs_plot_observed_and_each_simulation(arrays, tables, tmp_path: Path) -> None:
    obs, sim = arrays
    picks = plots.select_gauges(tables["model"])
    fig = plots.plot_hydrographs(obs, {"model": sim, "x": sim * 2}, picks, tables["model"])
    assert len(fig.axes) == 3
    assert len(fig.axes[0].get_lines()) == 3
    assert "NSE" in fig.axes[0].get_title()
    _save(fig, tmp_path, "hydro")


def test_gauge_map_marks_missing_values(tables: dict, tmp_path: Path) -> None:
    gauges = pd.DataFrame(
        {"lat": [40.0, 40.5, 41.0, 41.5], "lon": [-75.0, -75.2, -74.8, -74.5]},
        index=pd.Index(GAUGES, name="gage_id"),
    )
    values = tables["model"]["nse"].copy()
    values.iloc[0] = np.nan
    fig = plots.plot_gauge_map(gauges, values)
    collections = fig.axes[0].collections
    assert len(collections) == 2  # missing + finite
    assert collections[1].get_offsets().shape[0] == 3
    _save(fig, tmp_path, "map")


def test_reach_maps_and_log_scale(tmp_path: Path) -> None:
    lon, lat = np.linspace(-75, -74, 10), np.linspace(40, 41, 10)
    fig = plots.plot_reach_maps(
        lon,
        lat,
        {"n": np.linspace(0.02, 0.1, 10), "top_width": np.logspace(0, 3, 10)},
        log_scale=["top_width"],
    )
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert titles == ["n", "log10 top_width"]
    _save(fig, tmp_path, "reaches")


def test_loss_curve_requires_loss_column(tmp_path: Path) -> None:
    history = pd.DataFrame(
        {"step": [1, 2, 3], "train_loss": [3.0, 2.0, 1.5], "val_loss": [4, 3, 2.5]}
    )
    fig = plots.plot_loss_curve(history)
    assert len(fig.axes[0].get_lines()) == 2
    assert fig.axes[0].get_yscale() == "log"
    _save(fig, tmp_path, "loss")
    with pytest.raises(KeyError, match="no loss column"):
        plots.plot_loss_curve(pd.DataFrame({"epoch": [1]}))


def test_routing_summary_defaults_to_largest_reach(tmp_path: Path) -> None:
    time = pd.date_range("1980-01-01", periods=20, freq="D")
    q = xr.DataArray(
        np.outer([1.0, 50.0, 3.0], np.ones(20)),
        dims=("reach_id", "time"),
        coords={"reach_id": [11, 12, 13], "time": time},
    )
    fig = plots.plot_routing_summary(q)
    assert fig.axes[0].get_lines()[0].get_label() == "reach 12"
    _save(fig, tmp_path, "routing")
