"""Tests of the evaluation pipeline on tiny synthetic data (SequentialRunner, in-memory catalog)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from ddr_pipeline.data.geometry import reach_points
from ddr_pipeline.evaluation import metrics
from ddr_pipeline.evaluation.report import SUBSETS
from ddr_pipeline.model_store.checkpoints import CheckpointError, load_checkpoint
from ddr_pipeline.pipelines import model_loading
from ddr_pipeline.pipelines.evaluation import nodes
from ddr_pipeline.pipelines.evaluation.pipeline import create_pipeline
from pipelines.evaluation import synthetic as syn


def evaluation_params(models_dir: Path, reference: Path | None = None) -> dict:
    return {
        "geodataset": "drb",
        "run_name": "synthetic-run",
        "model": {"models_dir": str(models_dir), "checkpoint": None, "mlflow_model_uri": None},
        "check_training_parameters": False,
        "period": None,
        "warmup_days": 30,
        "chunk_days": 10,
        "device": "cpu",
        "well_observed_fraction": 0.9,
        "plot_subset": "all",
        "hydrograph_gauges": ["01000004"],
        "model_labels": {"reference": "NHM calibrated routing"},
        "baselines": {
            "summed_lateral_inflow": True,
            "untrained": {"enabled": True, "values": {"n": 0.035}},
            "reference": {"path": str(reference) if reference else None, "variable": "outflow"},
        },
    }


def run_evaluation(tmp_path: Path, with_reference: bool = True) -> dict:
    """Run the whole pipeline on synthetic data; return the free outputs (loaded)."""
    syn.write_checkpoint(tmp_path / "models")
    inputs = syn.model_inputs()
    reference = None
    if with_reference:
        reference = tmp_path / "reference_outflow.zarr"
        flow = inputs["lateral_inflow"].rename(reach_id="divide_id").T * 3.0
        flow.to_dataset(name="outflow").to_zarr(reference, consolidated=False)
    catalog = DataCatalog()
    catalog["drb.model_inputs"] = inputs
    catalog["drb.model_gauges"] = syn.gauges_table()
    catalog["drb.normalization_stats"] = {"attributes": {}, "forcings": {}}
    catalog["drb.reaches"] = syn.reaches_table()
    catalog["params:evaluation"] = evaluation_params(tmp_path / "models", reference)
    for key, value in evaluation_params(tmp_path / "models", reference).items():
        catalog[f"params:evaluation.{key}"] = value
    catalog["params:training"] = syn.training_params()
    pipeline = create_pipeline()
    for name in pipeline.all_outputs():
        catalog[name] = syn.KeptMemoryDataset()
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict:
    return run_evaluation(tmp_path_factory.mktemp("evaluation"))


def test_model_test_dataset(outputs: dict) -> None:
    ds = outputs["evaluation.model_test"]
    assert set(ds.data_vars) == {
        "predictions",
        "observations",
        "baseline_summed_lateral_inflow",
        "baseline_untrained",
        "baseline_initial",
        "baseline_reference",
    }
    assert ds["predictions"].dims == ("gage_id", "time")
    assert str(pd.Timestamp(ds["time"].values[0]).date()) == "1980-01-01"
    assert ds.attrs["routing_started"] == "1979-12-02"
    assert ds.attrs["units"] == "m3 s-1"
    assert ds.attrs["gauges_without_observations"] == ["01000005"]
    assert np.isfinite(ds["predictions"].values).all()
    assert "mid-range" in ds.attrs["baseline_untrained_parameters"]


def test_comparison_by_area_class(outputs: dict) -> None:
    table = outputs["evaluation.metrics_per_gauge"]
    by_area = outputs["evaluation.comparison_by_area"]
    assert {"model", "area_class", "n_gauges", "metric", "median"} <= set(by_area.columns)
    model = table[(table["model"] == "model") & table["observed"]]
    counts = by_area[(by_area["model"] == "model") & (by_area["metric"] == "nse")]
    assert counts["n_gauges"].sum() == len(model)
    assert set(counts["area_class"]) == set(model["area_class"])


def test_reported_nse_matches_independent_recomputation(outputs: dict) -> None:
    ds = outputs["evaluation.model_test"]
    table = outputs["evaluation.metrics_per_gauge"]
    model = table[table["model"] == "model"].set_index("gage_id")
    for gid in ds["gage_id"].values:
        p = ds["predictions"].sel(gage_id=gid).values.astype(np.float64)
        o = ds["observations"].sel(gage_id=gid).values.astype(np.float64)
        ok = np.isfinite(p) & np.isfinite(o)
        if ok.sum() < 2:
            assert np.isnan(model.loc[str(gid), "nse"])
            continue
        expected = 1 - np.sum((o[ok] - p[ok]) ** 2) / np.sum((o[ok] - o[ok].mean()) ** 2)
        assert model.loc[str(gid), "nse"] == pytest.approx(expected, rel=1e-6)


def test_summed_baseline_is_the_closure_sum(outputs: dict) -> None:
    ds = outputs["evaluation.model_test"]
    qlat = syn.model_inputs()["lateral_inflow"].sel(time=ds["time"])
    expected = qlat.sel(reach_id=[1, 2, 3, 4, 5]).sum("reach_id").values
    got = ds["baseline_summed_lateral_inflow"].sel(gage_id="01000002").values
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    ref = ds["baseline_reference"].sel(gage_id="01000002").values
    np.testing.assert_allclose(ref, 3.0 * qlat.sel(reach_id=5).values, rtol=1e-5)


def test_gauges_without_observations_are_flagged_not_scored(outputs: dict) -> None:
    table = outputs["evaluation.metrics_per_gauge"]
    row = table[(table["model"] == "model") & (table["gage_id"] == "01000005")].iloc[0]
    assert not row["observed"] and row["n_valid"] == 0 and np.isnan(row["nse"])
    comparison = outputs["evaluation.comparison"]
    all_model = comparison[(comparison["model"] == "model") & (comparison["subset"] == "all")]
    assert (all_model["n_gauges"] == 4).all()


def test_comparison_and_mlflow_metrics(outputs: dict) -> None:
    comparison = outputs["evaluation.comparison"]
    models = ("model", "summed_lateral_inflow", "untrained", "initial", "reference")
    assert set(comparison["model"]) == set(models)
    assert set(comparison["subset"]) == set(SUBSETS)
    table = outputs["evaluation.metrics_per_gauge"]
    sub = table[(table["model"] == "untrained") & table["observed"] & (table["split"] == "train")]
    row = comparison[
        (comparison["model"] == "untrained")
        & (comparison["subset"] == "train")
        & (comparison["metric"] == "nse")
    ].iloc[0]
    assert row["median"] == pytest.approx(sub["nse"].median())
    logged = outputs["evaluation.headline_metrics"]
    expected = {
        f"headline/{model}.{gauges}.{metric}_median"
        for model in models
        for gauges in ("all", "heldout")
        for metric in ("nse", "kge")
    }
    assert set(logged) == expected | {"headline/n_gauges.all", "headline/n_gauges.heldout"}
    heldout = comparison[
        (comparison["model"] == "model")
        & (comparison["subset"] == "validation")
        & (comparison["metric"] == "nse")
    ].iloc[0]
    assert logged["headline/model.heldout.nse_median"] == {"value": heldout["median"], "step": 0}


def test_figures_are_produced(outputs: dict) -> None:
    names = [
        "nse_cdf",
        "kge_cdf",
        "boxplots",
        "hydrographs",
        "gauge_map",
        "parameter_maps",
        "loss_curve",
    ]
    for name in names:
        assert isinstance(outputs[f"evaluation.plot_{name}"], Figure), name
    hydro = outputs["evaluation.plot_hydrographs"]
    assert hydro.axes[0].get_title().startswith("chosen 01000004")
    legend = [t.get_text() for t in hydro.axes[0].get_legend().get_texts()]
    assert "NHM calibrated routing" in legend and "no routing (summed Q')" in legend
    assert hydro.axes[1].get_yscale() == "log"


def test_reference_baseline_is_optional(tmp_path: Path) -> None:
    path = syn.write_checkpoint(tmp_path)
    ckpt = load_checkpoint(path)
    data = syn.model_inputs()
    inputs = model_loading.check_model_against_data(
        ckpt, data, {"attributes": {}, "forcings": {}}, "drb"
    )
    params = evaluation_params(tmp_path, reference=None)
    params["baselines"]["untrained"]["enabled"] = False
    params["baselines"]["initial"] = False
    ds = nodes.predict_test_period(ckpt, inputs, syn.gauges_table(), params, "run", data)
    assert set(ds.data_vars) == {"predictions", "observations", "baseline_summed_lateral_inflow"}


def test_checkpoint_not_matching_the_data_names_the_difference(tmp_path: Path) -> None:
    path = syn.write_checkpoint(tmp_path)
    ckpt = load_checkpoint(path)
    inputs = syn.model_inputs().rename(attribute="attr")
    inputs = inputs.assign_coords(attr=["a1", "b2", "a3"]).rename(attr="attribute")
    with pytest.raises(CheckpointError, match="attribute_names"):
        model_loading.check_model_against_data(
            ckpt, inputs, {"attributes": {}, "forcings": {}}, "drb"
        )
    other_stats = {"attributes": {"a1": {"mean": 1.0}}, "forcings": {}}
    with pytest.raises(CheckpointError, match="a1"):
        model_loading.check_model_against_data(ckpt, syn.model_inputs(), other_stats, "drb")
    changed = syn.training_params()
    ranges = {k: list(v) for k, v in ckpt.config.params.parameter_ranges.items()}
    changed["params"]["parameter_ranges"] = {**ranges, "n": [0.02, 0.3]}
    with pytest.raises(CheckpointError, match="parameter_ranges"):
        model_loading.check_model_against_data(
            ckpt, syn.model_inputs(), {"attributes": {}, "forcings": {}}, "drb", changed, True
        )
    with pytest.raises(CheckpointError, match="geodataset"):
        model_loading.check_model_against_data(
            ckpt, syn.model_inputs(), {"attributes": {}, "forcings": {}}, "merit"
        )


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-run"):
        model_loading.load_trained_model(
            {"models_dir": str(tmp_path), "checkpoint": None, "mlflow_model_uri": None},
            "no-such-run",
        )


def test_no_observations_in_period_fails(tmp_path: Path) -> None:
    syn.write_checkpoint(tmp_path / "models")
    ckpt = model_loading.load_trained_model(
        {"models_dir": str(tmp_path / "models"), "checkpoint": None, "mlflow_model_uri": None},
        "synthetic-run",
    )
    data = syn.model_inputs()
    data["observations"][:] = np.nan
    inputs = model_loading.check_model_against_data(
        ckpt, data, {"attributes": {}, "forcings": {}}, "drb"
    )
    params = evaluation_params(tmp_path / "models")
    with pytest.raises(ValueError, match="no observations at any gauge"):
        nodes.predict_test_period(ckpt, inputs, syn.gauges_table(), params, "synthetic-run", data)


def test_metrics_module_agrees_with_table(outputs: dict) -> None:
    ds = outputs["evaluation.model_test"]
    table = outputs["evaluation.metrics_per_gauge"]
    model = table[table["model"] == "model"].set_index("gage_id")
    kge = metrics.kge(ds["predictions"].values, ds["observations"].values)
    np.testing.assert_allclose(model.loc[ds["gage_id"].values.astype(str), "kge"], kge)


def test_reach_points_follow_ids_and_name_missing_reaches() -> None:
    reaches = syn.reaches_table().iloc[::-1]  # order must not matter
    points = reach_points(reaches, np.array([3, 1], dtype=np.int64))
    np.testing.assert_allclose(points, [[-75.1, 40.1], [-75.0, 40.0]])
    with pytest.raises(KeyError, match=r"lacks reach ids \[99\]"):
        reach_points(reaches, np.array([1, 99], dtype=np.int64))


def test_outputs_record_their_model_and_a_rerun_with_another_model_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 4 of issue 26: outputs of an epoch-23 checkpoint stood as the run's evaluation."""
    import logging
    import types

    from ddr_pipeline.model_store.checkpoints import check_output_model, model_fingerprint
    from ddr_pipeline.project.hooks import ModelOutputHooks

    ckpt = load_checkpoint(syn.write_checkpoint(tmp_path))
    data = syn.model_inputs()
    stats = {"attributes": {}, "forcings": {}}
    inputs = model_loading.check_model_against_data(ckpt, data, stats, "drb")
    params = evaluation_params(tmp_path, reference=None)
    ds = nodes.predict_test_period(ckpt, inputs, syn.gauges_table(), params, "run", data)
    fingerprint = model_fingerprint(ckpt.payload["model_state_dict"])
    assert ds.attrs["model_fingerprint"] == fingerprint
    store = tmp_path / "model_test.zarr"
    ds.attrs["model_fingerprint"] = "0123456789abcdef"  # written earlier by another model
    ds.to_zarr(store, consolidated=False)
    with pytest.raises(CheckpointError, match="made from model 0123456789abcdef"):
        check_output_model(ds.attrs, fingerprint, str(store))
    hooks = ModelOutputHooks()
    resolver = types.SimpleNamespace(resolve_pattern=lambda name: {"filepath": str(store)})
    hooks.after_catalog_created(types.SimpleNamespace(config_resolver=resolver))
    new = ds.assign_attrs(model_fingerprint=fingerprint)
    with caplog.at_level(logging.WARNING):
        hooks.before_dataset_saved("evaluation.model_test", new)
    assert "Replacing an output of another model" in caplog.text
    assert f"not from model {fingerprint}" in caplog.text
