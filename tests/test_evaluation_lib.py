"""Tests of the public :mod:`ddr_pipeline.evaluation` library functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pipelines.evaluation import synthetic as syn

from ddr_pipeline import evaluation, model_store
from ddr_pipeline.data.batching import ModelInputs


def test_resolve_period_prefers_period_then_default() -> None:
    assert evaluation.resolve_period(
        ["1980-01-05T12:00", "1980-02-01"], ["1979-01-01", "1979-12-31"], missing="x"
    ) == ("1980-01-05", "1980-02-01")
    assert evaluation.resolve_period(None, ["1979-01-01", "1979-12-31"], missing="x") == (
        "1979-01-01",
        "1979-12-31",
    )
    with pytest.raises(ValueError, match="no period here"):
        evaluation.resolve_period(None, None, missing="no period here")
    with pytest.raises(ValueError, match="no period here"):
        evaluation.resolve_period(["1980-01-01"], None, missing="no period here")


def test_evaluation_and_routing_periods() -> None:
    data = xr.Dataset(attrs={"test_period": ["1980-01-01", "1980-01-31"]})
    assert evaluation.evaluation_period(None, data) == ("1980-01-01", "1980-01-31")
    with pytest.raises(ValueError, match="test_period attribute"):
        evaluation.evaluation_period(None, xr.Dataset())
    dates = pd.date_range("1979-11-01", periods=10, freq="D")
    assert evaluation.routing_period(None, dates) == ("1979-11-01", "1979-11-10")
    assert evaluation.routing_period(["1979-11-02", "1979-11-03"], dates) == (
        "1979-11-02",
        "1979-11-03",
    )


def test_routed_days_with_and_without_full_warmup() -> None:
    inputs = ModelInputs.from_dataset(syn.model_inputs())  # 1979-11-01 + 91 days
    full = evaluation.routed_days(inputs, ("1980-01-01", "1980-01-10"), warmup_days=30)
    assert (full.route_from, full.start, full.stop, full.shortfall) == (31, 61, 71, 0)
    assert full.keep == slice(30, None) and full.days == slice(31, 71)
    short = evaluation.routed_days(inputs, ("1979-11-05", "1979-11-10"), warmup_days=10)
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
    assert list(evaluation.gauge_subset(table[table["model"] == "model"], subset)["gage_id"]) == (
        expected
    )


def test_gauge_subset_names_unknown_subset() -> None:
    with pytest.raises(KeyError, match="'east'"):
        evaluation.gauge_subset(per_gauge_table(), "east")


def test_tables_by_model_and_comparison_table() -> None:
    tables = evaluation.tables_by_model(per_gauge_table(), "train")
    assert list(tables) == ["model", "untrained"]
    assert list(tables["untrained"].index) == ["a", "b"]
    comparison = evaluation.comparison_table(per_gauge_table())
    row = comparison[
        (comparison["model"] == "model")
        & (comparison["subset"] == "train")
        & (comparison["metric"] == "nse")
    ]
    assert row["n_gauges"].item() == 2
    assert row["median"].item() == pytest.approx(0.7)
    assert set(comparison["subset"]) == set(evaluation.SUBSETS)


def obs_dataset(values: np.ndarray) -> xr.Dataset:
    dates = pd.date_range("1980-01-01", periods=values.shape[1], freq="D")
    obs = evaluation.gauge_array(values.T, ["g1", "g2"], dates, "m3 s-1")
    return xr.Dataset({"observations": obs, "predictions": obs + 1.0})


def test_observation_report_and_gauge_array() -> None:
    values = np.array([[1.0, np.nan, 2.0, 3.0], [np.nan, np.nan, np.nan, np.nan]])
    ds = obs_dataset(values)
    assert ds["observations"].dims == ("gage_id", "time")
    assert ds["observations"].dtype == np.float32
    report = evaluation.observation_report(ds, pd.Timestamp("1980-01-01"))
    assert report == {
        "gauges_without_observations": ["g2"],
        "days_without_observations": ["1980-01-02"],
    }
    with pytest.raises(ValueError, match="1980-01-01..1980-01-04"):
        evaluation.observation_report(
            obs_dataset(np.full((2, 4), np.nan)), pd.Timestamp("1980-01-01")
        )


def test_scored_window_and_model_names() -> None:
    ds = obs_dataset(np.arange(8.0).reshape(2, 4)).assign_attrs(scored_from="1980-01-03")
    ds["baseline_untrained"] = ds["observations"] * 2
    predicted, observed = evaluation.scored_window(ds, "predictions")
    np.testing.assert_array_equal(observed, [[2.0, 3.0], [6.0, 7.0]])
    np.testing.assert_array_equal(predicted, observed + 1.0)
    assert evaluation.model_names(ds) == {
        "model": "predictions",
        "untrained": "baseline_untrained",
    }


def test_predict_period_matches_direct_routing(tmp_path: Path) -> None:
    ckpt = model_store.load_model(
        checkpoint=str(syn.write_checkpoint(tmp_path)), run_name="r", models_dir=str(tmp_path)
    )
    inputs = ModelInputs.from_dataset(syn.model_inputs())
    settings = evaluation.PredictionSettings(
        warmup_days=5, chunk_days=7, baselines={"untrained": {"enabled": False}}
    )
    period = ("1980-01-01", "1980-01-20")
    ds = evaluation.predict_period(ckpt, inputs, syn.gauges_table(), period, settings, "r")
    assert set(ds.data_vars) == {"predictions", "observations", "baseline_summed_lateral_inflow"}
    assert ds.attrs["period"] == list(period) and ds.attrs["scored_from"] == "1980-01-01"
    assert ds.attrs["gauges_without_observations"] == ["01000005"]
    routed = evaluation.route_reaches(ckpt, inputs, period, settings, None, "r")
    gauges = syn.gauges_table().set_index("STAID")["reach_ids"]
    outlet = routed["discharge"].sel(reach_id=gauges["01000003"][0])
    np.testing.assert_allclose(ds["predictions"].sel(gage_id="01000003"), outlet, rtol=1e-4)
