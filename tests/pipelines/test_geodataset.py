"""Geodataset selection (``DDR_GEODATASET``) and the parameter consistency checks."""

from __future__ import annotations

import importlib

import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from ddr_pipeline.pipelines import geodataset
from ddr_pipeline.pipelines.data_processing import pipeline as data_processing
from ddr_pipeline.pipelines.evaluation import pipeline as evaluation
from ddr_pipeline.pipelines.routing import pipeline as routing
from ddr_pipeline.pipelines.training import pipeline as training

MODULES = (data_processing, training, evaluation, routing)


def test_default_is_the_demo(monkeypatch):
    monkeypatch.delenv(geodataset.ENV_VAR, raising=False)
    assert geodataset.active_geodataset() == "drb"
    monkeypatch.setenv(geodataset.ENV_VAR, "  ")
    assert geodataset.active_geodataset() == "drb"


@pytest.mark.parametrize("name", ["merit", "lynker_hydrofabric", "drb"])
def test_variable_selects(monkeypatch, name):
    monkeypatch.setenv(geodataset.ENV_VAR, name)
    assert geodataset.active_geodataset() == name


def test_any_well_formed_name_is_a_geodataset(monkeypatch):
    """No code list: a new basin needs only its data folder and conf environment."""
    monkeypatch.setenv(geodataset.ENV_VAR, "tiny_basin2")
    assert geodataset.active_geodataset() == "tiny_basin2"
    monkeypatch.setenv(geodataset.ENV_VAR, "Camels-US")
    with pytest.raises(ValueError, match=r"invalid geodataset name 'Camels-US'"):
        geodataset.active_geodataset()


def test_nothing_reads_the_variable_at_import(monkeypatch):
    monkeypatch.setenv(geodataset.ENV_VAR, "Not A Name")
    for module in MODULES:
        importlib.reload(module)  # would raise if a module read the variable at import
    monkeypatch.delenv(geodataset.ENV_VAR)


def test_check_geodataset_names_both():
    assert geodataset.check_geodataset("merit", "merit") == "merit"
    with pytest.raises(ValueError, match=r"'drb'.*'merit'.*--env merit"):
        geodataset.check_geodataset("drb", "merit")
    assert geodataset.geodataset_check("merit")("merit") == "merit"


def test_pipelines_follow_the_variable_when_created(monkeypatch):
    monkeypatch.setenv(geodataset.ENV_VAR, "merit")
    assert {n.namespace for n in data_processing.create_pipeline().nodes} == {"merit"}
    for module in (training, evaluation, routing):
        inputs = module.create_pipeline().inputs()
        assert "merit.model_inputs" in inputs
        assert not any(i.startswith("drb.") for i in inputs)


def test_any_geodataset_can_still_be_built():
    assert (
        "lynker_hydrofabric.model_inputs"
        in evaluation.create_pipeline(geodataset="lynker_hydrofabric").inputs()
    )
    assert "merit.normalization_stats" in routing.create_pipeline(geodataset="merit").inputs()


@pytest.mark.parametrize("module,section", [(evaluation, "evaluation"), (routing, "routing")])
def test_parameter_mismatch_stops_evaluation_and_routing(module, section):
    pipeline = module.create_pipeline(geodataset="merit")
    check = pipeline.only_nodes_with_outputs(f"{section}.geodataset")
    catalog = DataCatalog()
    catalog[f"params:{section}.geodataset"] = "drb"
    with pytest.raises(ValueError, match=r"parameters are for geodataset 'drb'.*built for 'merit'"):
        SequentialRunner().run(check, catalog)


def test_parameter_mismatch_stops_data_processing():
    pipeline = data_processing.create_pipeline(geodatasets=("merit",))
    check = pipeline.only_nodes("merit.check_geodataset")
    catalog = DataCatalog()
    catalog["params:data_processing"] = {"geodataset": "drb"}
    with pytest.raises(ValueError, match=r"'drb'.*'merit'"):
        SequentialRunner().run(check, catalog)
    catalog["params:data_processing"] = {"geodataset": "merit"}
    SequentialRunner().run(check, catalog)
    catalog["params:data_processing"] = {}  # no geodataset key: nothing to compare
    SequentialRunner().run(check, catalog)
