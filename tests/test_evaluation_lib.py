"""Tests of the public :mod:`ddr_pipeline.evaluation` library functions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from pipelines.evaluation import synthetic as syn

from ddr_pipeline.config.model_source import ModelSource
from ddr_pipeline.config.pipelines import BaselinesConfig, UntrainedBaselineConfig
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.evaluation.predictions import predict_period
from ddr_pipeline.evaluation.report import (
    AREA_CLASS_LABELS,
    AREA_UNKNOWN,
    SUBSETS,
    area_class,
    comparison_by_area,
    comparison_table,
    gauge_subset,
    model_names,
    observation_report,
    scored_window,
    tables_by_model,
)
from ddr_pipeline.inference.gauges import PredictionSettings, gauge_array
from ddr_pipeline.inference.periods import (
    evaluation_period,
    resolve_period,
    routed_days,
    routing_period,
)
from ddr_pipeline.inference.reaches import route_reaches
from ddr_pipeline.model_store.loader import load_model


def test_resolve_period_prefers_period_then_default() -> None:
    assert resolve_period(
        ["1980-01-05T12:00", "1980-02-01"], ["1979-01-01", "1979-12-31"], missing="x"
    ) == ("1980-01-05", "1980-02-01")
    assert resolve_period(None, ["1979-01-01", "1979-12-31"], missing="x") == (
        "1979-01-01",
        "1979-12-31",
    )
    with pytest.raises(ValueError, match="no period here"):
        resolve_period(None, None, missing="no period here")
    with pytest.raises(ValueError, match="no period here"):
        resolve_period(["1980-01-01"], None, missing="no period here")


def test_evaluation_and_routing_periods() -> None:
    data = xr.Dataset(attrs={"test_period": ["1980-01-01", "1980-01-31"]})
    assert evaluation_period(None, data) == ("1980-01-01", "1980-01-31")
    with pytest.raises(ValueError, match="test_period attribute"):
        evaluation_period(None, xr.Dataset())
    dates = pd.date_range("1979-11-01", periods=10, freq="D")
    assert routing_period(None, dates) == ("1979-11-01", "1979-11-10")
    assert routing_period(["1979-11-02", "1979-11-03"], dates) == (
        "1979-11-02",
        "1979-11-03",
    )


def test_routed_days_with_and_without_full_warmup() -> None:
    inputs = ModelInputs.from_dataset(syn.model_inputs())  # 1979-11-01 + 91 days
    full = routed_days(inputs, ("1980-01-01", "1980-01-10"), warmup_days=30)
    assert (full.route_from, full.start, full.stop, full.shortfall) == (31, 61, 71, 0)
    assert full.keep == slice(30, None) and full.days == slice(31, 71)
    short = routed_days(inputs, ("1979-11-05", "1979-11-10"), warmup_days=10)
    assert (short.route_from, short.start, short.shortfall) == (0, 4, 6)


def per_gauge_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["model"] * 4 + ["untrained"] * 4,
            "gage_id": ["a", "b", "c", "d"] * 2,
            "split": ["train", "train", "validation", "validation"] * 2,
            "well_observed": [True, False, True, True] * 2,
            "observed": [True, True, True, False] * 2,
            "nse": [0.9, 0.5, 0.7, np.nan, 0.1, 0.2, 0.3, np.nan],
        }
    )


@pytest.mark.parametrize(
    ("subset", "expected"),
    [
        ("all", ["a", "b", "c"]),
        ("well_observed", ["a", "c"]),
        ("train", ["a", "b"]),
        ("validation", ["c"]),
        ("train_well", ["a"]),
        ("validation_well", ["c"]),
    ],
)
def test_gauge_subset_keeps_observed_gauges_of_the_subset(subset: str, expected: list) -> None:
    table = per_gauge_table()
    assert list(gauge_subset(table[table["model"] == "model"], subset)["gage_id"]) == (expected)


def test_gauge_subset_names_unknown_subset() -> None:
    with pytest.raises(KeyError, match="'east'"):
        gauge_subset(per_gauge_table(), "east")


def test_tables_by_model_and_comparison_table() -> None:
    tables = tables_by_model(per_gauge_table(), "train")
    assert list(tables) == ["model", "untrained"]
    assert list(tables["untrained"].index) == ["a", "b"]
    comparison = comparison_table(per_gauge_table())
    row = comparison[
        (comparison["model"] == "model")
        & (comparison["subset"] == "train")
        & (comparison["metric"] == "nse")
    ]
    assert row["n_gauges"].item() == 2
    assert row["median"].item() == pytest.approx(0.7)
    assert set(comparison["subset"]) == set(SUBSETS)


def obs_dataset(values: np.ndarray) -> xr.Dataset:
    dates = pd.date_range("1980-01-01", periods=values.shape[1], freq="D")
    obs = gauge_array(values.T, ["g1", "g2"], dates, "m3 s-1")
    return xr.Dataset({"observations": obs, "predictions": obs + 1.0})


def test_observation_report_and_gauge_array() -> None:
    values = np.array([[1.0, np.nan, 2.0, 3.0], [np.nan, np.nan, np.nan, np.nan]])
    ds = obs_dataset(values)
    assert ds["observations"].dims == ("gage_id", "time")
    assert ds["observations"].dtype == np.float32
    report = observation_report(ds, pd.Timestamp("1980-01-01"))
    assert report == {
        "gauges_without_observations": ["g2"],
        "days_without_observations": ["1980-01-02"],
    }
    with pytest.raises(ValueError, match="1980-01-01..1980-01-04"):
        observation_report(obs_dataset(np.full((2, 4), np.nan)), pd.Timestamp("1980-01-01"))


def test_scored_window_and_model_names() -> None:
    ds = obs_dataset(np.arange(8.0).reshape(2, 4)).assign_attrs(scored_from="1980-01-03")
    ds["baseline_untrained"] = ds["observations"] * 2
    predicted, observed = scored_window(ds, "predictions")
    np.testing.assert_array_equal(observed, [[2.0, 3.0], [6.0, 7.0]])
    np.testing.assert_array_equal(predicted, observed + 1.0)
    assert model_names(ds) == {
        "model": "predictions",
        "untrained": "baseline_untrained",
    }


def test_predict_period_matches_direct_routing(tmp_path: Path) -> None:
    ckpt = load_model(
        ModelSource(
            checkpoint=str(syn.write_checkpoint(tmp_path)), run_name="r", models_dir=str(tmp_path)
        )
    )
    inputs = ModelInputs.from_dataset(syn.model_inputs())
    settings = PredictionSettings(
        warmup_days=5,
        chunk_days=7,
        baselines=BaselinesConfig(untrained=UntrainedBaselineConfig(enabled=False), initial=False),
    )
    period = ("1980-01-01", "1980-01-20")
    ds = predict_period(ckpt, inputs, syn.gauges_table(), period, settings, "r")
    assert set(ds.data_vars) == {"predictions", "observations", "baseline_summed_lateral_inflow"}
    assert ds.attrs["period"] == list(period) and ds.attrs["scored_from"] == "1980-01-01"
    assert ds.attrs["gauges_without_observations"] == ["01000005"]
    routed = route_reaches(ckpt, inputs, period, settings, None, "r")
    gauges = syn.gauges_table().set_index("STAID")["reach_ids"]
    outlet = routed["discharge"].sel(reach_id=gauges["01000003"][0])
    np.testing.assert_allclose(ds["predictions"].sel(gage_id="01000003"), outlet, rtol=1e-4)


def test_area_class_edges_belong_to_the_upper_class() -> None:
    areas = [0.0, 999.9, 1000.0, 4999.0, 5000.0, 9999.0, 10000.0, 8657.3, np.nan, -1.0]
    expected = [0, 0, 1, 1, 2, 2, 3, 2]
    labels = area_class(areas)
    assert list(labels[:8]) == [AREA_CLASS_LABELS[i] for i in expected]
    assert list(labels[8:]) == [AREA_UNKNOWN, AREA_UNKNOWN]


def test_comparison_by_area_summarises_each_class() -> None:
    table = per_gauge_table()
    table["area_class"] = list(area_class([500.0, 20000.0, 700.0, 3000.0])) * 2
    by_area = comparison_by_area(table)
    nse = by_area[by_area["metric"] == "nse"].set_index(["model", "area_class"])
    # observed gauges only: a (500), b (20000), c (700); d (3000) has no observation
    assert nse.loc[("model", "<1000 km2"), "n_gauges"] == 2
    assert nse.loc[("model", "<1000 km2"), "median"] == pytest.approx(0.8)
    assert nse.loc[("untrained", ">=10000 km2"), "median"] == pytest.approx(0.2)
    assert ("model", "1000-5000 km2") not in nse.index
    legacy = comparison_by_area(per_gauge_table())  # no area_class column: all unknown
    assert set(legacy["area_class"]) == {AREA_UNKNOWN}


def test_baselines_state_parameters_and_the_initial_weights(tmp_path: Path) -> None:
    ckpt = load_model(
        ModelSource(
            checkpoint=str(syn.write_checkpoint(tmp_path)), run_name="r", models_dir=str(tmp_path)
        )
    )
    inputs = ModelInputs.from_dataset(syn.model_inputs())
    settings = PredictionSettings(
        warmup_days=5,
        chunk_days=7,
        baselines=BaselinesConfig(untrained=UntrainedBaselineConfig(values={"n": 0.05})),
    )
    period = ("1980-01-01", "1980-01-10")
    ds = predict_period(ckpt, inputs, syn.gauges_table(), period, settings, "r")
    stated = json.loads(ds["baseline_untrained"].attrs["parameters"])
    assert stated["n"] == "0.05 (configured)"
    assert all(
        stated[name].endswith("(mid-range)")
        for name in ckpt.config.learned_parameters
        if name != "n"
    )
    assert ds.attrs["baseline_untrained_parameters"] == ds["baseline_untrained"].attrs["parameters"]
    assert "initial weights" in ds["baseline_initial"].attrs["parameters"]
    # the synthetic checkpoint is untrained: its starting point is the model itself
    np.testing.assert_array_equal(ds["baseline_initial"], ds["predictions"])
    # after "training" (weights moved) the initial baseline stays at the starting point
    with torch.no_grad():
        for weight in ckpt.model.parameters():
            weight.add_(0.3)
    moved = predict_period(ckpt, inputs, syn.gauges_table(), period, settings, "r")
    np.testing.assert_array_equal(moved["baseline_initial"], ds["baseline_initial"])
    assert not np.allclose(moved["predictions"], ds["predictions"], equal_nan=True)
