"""The data_processing pipeline through Kedro's SequentialRunner on an in-memory catalog."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from ddr_pipeline.data.provenance import SPLIT_FINGERPRINT, STATS_FINGERPRINT, stats_fingerprint
from ddr_pipeline.pipelines.data_processing import create_pipeline

NAMESPACE = "syn"
OUTPUTS = {
    f"{NAMESPACE}.{name}"
    for name in ("model_inputs", "model_gauges", "normalization_stats",
                 "normalization_stats_artifact", "data_processing_metrics")
}
#: Outputs no node consumes (what SequentialRunner hands back on an empty catalog).
FREE_OUTPUTS = {
    f"{NAMESPACE}.{name}"
    for name in ("model_inputs", "normalization_stats_artifact", "data_processing_metrics")
}


def _catalog(raw, params) -> DataCatalog:
    catalog = DataCatalog()
    for name, value in raw.items():
        catalog[f"{NAMESPACE}.{name}"] = value
    catalog["params:data_processing"] = params
    return catalog


def test_pipeline_is_namespaced_per_geodataset():
    pipeline = create_pipeline(geodatasets=(NAMESPACE,))
    assert {n.namespace for n in pipeline.nodes} == {NAMESPACE}
    assert all(n.name.split(".", 1)[1] for n in pipeline.nodes)
    assert "params:data_processing" in pipeline.inputs()
    assert {f"{NAMESPACE}.{n}" for n in ("reaches", "lateral_inflow")} <= pipeline.inputs()


def test_pipeline_runs_end_to_end(raw, params, caplog):
    caplog.set_level(logging.DEBUG, logger="kedro")
    pipeline = create_pipeline(geodatasets=(NAMESPACE,))
    assert pipeline.all_outputs() >= OUTPUTS
    assert pipeline.outputs() == FREE_OUTPUTS
    result = SequentialRunner().run(pipeline, _catalog(raw, params))
    assert "Pipeline execution completed successfully" in caplog.text
    assert set(result) == FREE_OUTPUTS

    ds = result[f"{NAMESPACE}.model_inputs"].load()
    assert set(ds.data_vars) >= {
        "to_id", "length_m", "slope", "x", "attributes", "attributes_raw", "lateral_inflow",
        "forcings", "observations",
    }
    assert ds.sizes == {"reach_id": 6, "gage_id": 5, "time": 20, "attribute": 2, "forcing": 3}
    stats = result[f"{NAMESPACE}.normalization_stats_artifact"].load()
    assert stats["computed_on"]["n_reaches"] == 4
    # the outputs record the run that wrote them (ddr_pipeline.data.provenance)
    assert ds.attrs[STATS_FINGERPRINT] == stats_fingerprint(json.loads(json.dumps(stats)))
    assert len(ds.attrs[SPLIT_FINGERPRINT]) == 64
    assert ds.attrs[SPLIT_FINGERPRINT] == stats["computed_on"][SPLIT_FINGERPRINT]
    metrics = result[f"{NAMESPACE}.data_processing_metrics"].load()
    assert metrics["n_reaches"]["value"] == 6.0
    assert metrics["n_gauges_validation"]["value"] == 1.0


def test_bad_input_stops_the_run_before_any_output(raw, params):
    raw["reaches"].loc[0, "to_id"] = 10  # self-loop
    pipeline = create_pipeline(geodatasets=(NAMESPACE,))
    catalog = _catalog(raw, params)
    with pytest.raises(ValueError, match="self-loops.*10"):
        SequentialRunner().run(pipeline, catalog)
    assert not any(catalog.exists(name) for name in OUTPUTS)


def test_negative_lateral_inflow_stops_the_run(raw, params):
    raw["lateral_inflow"]["Qr"][1, 1] = -np.float32(2.0)
    with pytest.raises(ValueError, match="negative Qr"):
        SequentialRunner().run(create_pipeline(geodatasets=(NAMESPACE,)), _catalog(raw, params))


def test_pipeline_without_forcings_store(raw, params, tmp_path):
    """No LSTM: `forcings: []` needs no store (the optional catalog entry loads empty)."""
    from ddr_pipeline.project.datasets import XarrayZarrDataset

    raw = {**raw, "forcings": XarrayZarrDataset(filepath=str(tmp_path / "f.zarr"), optional=True)}
    raw["forcings"] = raw["forcings"].load()
    assert raw["forcings"].attrs["absent"].endswith("f.zarr") and not raw["forcings"].data_vars
    result = SequentialRunner().run(
        create_pipeline(geodatasets=(NAMESPACE,)), _catalog(raw, {**params, "forcings": []})
    )
    ds = result[f"{NAMESPACE}.model_inputs"].load()
    assert ds["forcings"].dims == ("time", "reach_id", "forcing")
    assert ds.sizes["forcing"] == 0 and ds.sizes["time"] == 20
    stats = result[f"{NAMESPACE}.normalization_stats_artifact"].load()
    assert stats["forcings"] == {}


def test_absent_forcings_with_forcings_configured_fail_clearly(raw, params, tmp_path):
    from ddr_pipeline.project.datasets import XarrayZarrDataset

    absent = XarrayZarrDataset(filepath=str(tmp_path / "f.zarr"), optional=True)
    assert absent.exists()  # loadable either way: the run's preflight does not stop on it
    raw = {**raw, "forcings": absent.load()}
    with pytest.raises(Exception, match=r"f.zarr: no forcings store, but data_processing.forcings"):
        SequentialRunner().run(create_pipeline(geodatasets=(NAMESPACE,)), _catalog(raw, params))
