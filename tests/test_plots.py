"""Tests for ddr_pipeline.evaluation.plots: every figure builds, has the expected content and saves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

from ddr_pipeline.evaluation import plots
from ddr_pipeline.evaluation.metrics import metrics_table

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
    off_chart = int((tables["model"]["nse"] < -1).sum())
    assert off_chart > 0
    assert labels[0].startswith(f"{plots.MODEL_LABELS['model']} (median")
    assert labels[0].endswith(f"n=4, {off_chart} < -1 off chart)")
    assert labels[1].startswith("baseline (median")  # unknown names are kept
    assert ax.get_xlabel() == "NSE (-)"
    _save(fig, tmp_path, "cdf")


def test_legend_names_are_readable_and_overridable(tables: dict) -> None:
    renamed = {"summed_lateral_inflow": tables["model"], "reference": tables["baseline"]}
    fig = plots.plot_metric_cdf(renamed, "kge", labels={"reference": "NHM calibrated routing"})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("no routing (summed Q')")
    assert labels[1].startswith("NHM calibrated routing")


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
    assert len(fig.axes) == 6  # a linear and a log panel per gauge
    linear, log = fig.axes[0], fig.axes[1]
    assert len(linear.get_lines()) == 3 and len(log.get_lines()) == 3
    assert (linear.get_yscale(), log.get_yscale()) == ("linear", "log")
    assert "NSE" in linear.get_title()
    assert linear.get_ylabel() == "discharge (m³/s)"
    legend = [t.get_text() for t in linear.get_legend().get_texts()]
    assert legend == ["observed", plots.MODEL_LABELS["model"], "x"]
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


def test_gauge_map_draws_the_network_underneath(tables: dict) -> None:
    gauges = pd.DataFrame(
        {"lat": [40.0, 40.5, 41.0, 41.5], "lon": [-75.0, -75.2, -74.8, -74.5]},
        index=pd.Index(GAUGES, name="gage_id"),
    )
    lines = plots.ReachLines([np.array([[-75.0, 40.0], [-74.5, 41.5]])], np.array([0]))
    fig = plots.plot_gauge_map(gauges, tables["model"]["nse"], lines=lines)
    kinds = [type(c).__name__ for c in fig.axes[0].collections]
    assert kinds[0] == "LineCollection"


def test_reach_maps_as_coloured_lines_with_units(tmp_path: Path) -> None:
    segments = [np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 1.0], [2.0, 1.5]])]
    segments.append(np.array([[2.0, 1.5], [3.0, 1.0]]))  # second part of reach 1
    lines = plots.ReachLines(segments, np.array([0, 1, 1]))
    fig = plots.plot_reach_maps(
        np.zeros(2), np.zeros(2), {"mean n": np.array([0.03, np.nan])}, lines=lines
    )
    ax = fig.axes[0]
    missing, coloured = ax.collections
    assert len(missing.get_segments()) == 2 and len(coloured.get_segments()) == 1
    assert fig.axes[1].get_ylabel() == "mean n (s m⁻¹ᐟ³)"  # the colour bar
    _save(fig, tmp_path, "lines")


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
    colour_bars = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel().startswith(("n ", "log10"))]
    assert colour_bars == ["n (s m⁻¹ᐟ³)", "log10 top_width (m)"]
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


def test_loss_curve_marks_epochs_and_validation(tmp_path: Path) -> None:
    history = pd.DataFrame(
        {
            "step": range(6),
            "epoch": [1, 1, 1, 2, 2, 2],
            "loss": [4.0, 3.0, 2.5, 2.0, 1.8, 1.6],
            "val_nse_median": [np.nan, np.nan, 0.2, np.nan, np.nan, 0.4],
        }
    )
    fig = plots.plot_loss_curve(history, loss_label="MSE loss ((m³/s)²)")
    ax, right = fig.axes
    assert ax.get_ylabel() == "MSE loss ((m³/s)²)"
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in dashed] == [3]  # the start of epoch 2
    assert [t.get_text() for t in ax.texts] == ["epoch 1", "epoch 2"]
    assert list(right.get_lines()[0].get_ydata()) == [0.2, 0.4]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["loss per mini-batch", "epoch mean", "validation nse_median (-)"]
    _save(fig, tmp_path, "loss_epochs")


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
