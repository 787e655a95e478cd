"""The first hour of a new user: short errors, quiet console, comparable MLflow runs, test outputs.

The ``kedro run`` cases call the project's CLI command in-process (click's test runner) on a copy
of ``conf/`` whose ``test`` environment writes under ``tmp_path`` (see ``kedro_test_session``).
"""

from __future__ import annotations

import logging
import warnings

import geopandas as gpd
import mlflow
import numpy as np
import pandas as pd
import pytest
import shapely
import torch
import yaml
from click.testing import CliRunner

from ddr_pipeline.data.geometry import reach_lines
from ddr_pipeline.model_store.checkpoints import model_fingerprint
from ddr_pipeline.pipeline_registry import UnknownPipelineError
from ddr_pipeline.project import console, preflight, tracking
from ddr_pipeline.project.pipeline_folders import pipeline_folders

# ---------------------------------------------------------------- library pieces


def test_param_override_typo_gets_a_did_you_mean() -> None:
    params = {
        "training": {"experiment": {"epochs": 15, "learning_rate": {1: 0.005}}},
        "evaluation": {"period": None, "baselines": {"untrained": {"values": {}}}},
    }
    fine = {
        "run_name": "x",
        "training": {"experiment": {"epochs": 2, "learning_rate": {3: 0.001}}},
        "evaluation": {"period": ["1980-01-01", "1980-02-01"]},
    }
    preflight.check_param_overrides(fine, params, runtime_only={"run_name"})
    preflight.check_param_overrides(
        {"evaluation": {"baselines": {"untrained": {"values": {"n": 0.05}}}}}, params
    )
    with pytest.raises(preflight.UserError) as info:
        preflight.check_param_overrides({"training": {"experiment": {"epoch": 2}}}, params)
    assert "training.experiment.epoch (did you mean 'training.experiment.epochs'?)" in str(info.value)
    with pytest.raises(preflight.UserError, match="run_nme \\(did you mean 'run_name'"):
        preflight.check_param_overrides({"run_nme": "x"}, params, runtime_only={"run_name"})


def test_missing_inputs_name_the_step_or_the_converter() -> None:
    message = preflight.missing_inputs_message(
        {"drb.model_inputs": "data/05_model_input/drb/model_inputs.zarr"},
        {"drb.model_inputs": "data_processing"},
    )
    assert "drb.model_inputs (data/05_model_input/drb/model_inputs.zarr)" in message
    assert "run `kedro run --pipelines data_processing` first" in message
    raw = preflight.missing_inputs_message({"merit.reaches": "data/01_raw/merit/reaches.parquet"}, {})
    assert "`ddr-convert-merit --config conf/merit/sources.yml`" in raw
    assert "docs/datasets/merit.md" in raw


def test_known_warnings_are_filtered_unless_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        console.filter_known_warnings()
        for message in (
            "\x1b[33mAdd type hints to the `predict` method ...\x1b[0m",
            "register_new_resolver() is deprecated and will be removed",
            "something else",
        ):
            warnings.warn(message, UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]
    # MLflow raises some under its own simplefilter("once"): the py.warnings log filter drops them
    record = logging.LogRecord("py.warnings", logging.WARNING, "x.py", 1, "...", None, None)
    record.msg = "x.py:1: UserWarning: \x1b[33mAdd type hints to the `predict` method"
    assert not logging.getLogger("py.warnings").filters[-1].filter(record)
    monkeypatch.setenv(console.VERBOSE_ENV, "1")
    assert console.verbose()
    console.apply_verbosity()
    assert logging.getLogger("kedro.io.data_catalog").level == logging.INFO
    logging.getLogger("kedro.io.data_catalog").setLevel(logging.WARNING)


def test_headline_metrics_names_and_values() -> None:
    rows = []
    for model in ("model", "summed_lateral_inflow"):
        for subset, n in (("all", 50), ("validation", 10), ("train", 40)):
            for metric, median in (("nse", 0.5), ("kge", 0.6), ("rmse", 3.0)):
                value = median + (0.1 if model == "model" else 0.0) + (0.01 if subset == "all" else 0)
                rows.append((model, subset, metric, value, n))
    comparison = pd.DataFrame(rows, columns=["model", "subset", "metric", "median", "n_gauges"])
    headline = tracking.headline_metrics(comparison)
    assert headline["headline/model.heldout.nse_median"] == pytest.approx(0.6)
    assert headline["headline/summed_lateral_inflow.all.kge_median"] == pytest.approx(0.61)
    assert headline["headline/n_gauges.heldout"] == 10
    assert len(headline) == 2 * 2 * 2 + 2  # models x gauge sets x metrics + counts
    assert tracking.PRIMARY_METRIC in headline
    assert tracking.mlflow_run_name(["evaluation"], "my-run") == "evaluation:my-run"
    assert tracking.mlflow_run_name(None, "my-run") == "default:my-run"


def test_model_fingerprint_depends_on_the_weights_only() -> None:
    state = {"a.weight": torch.ones(2, 3), "b.bias": torch.zeros(2)}
    same = {"b.bias": torch.zeros(2), "a.weight": torch.ones(2, 3).clone()}
    assert model_fingerprint(state) == model_fingerprint(same)
    other = {"a.weight": torch.ones(2, 3), "b.bias": torch.tensor([0.0, 1e-7])}
    assert model_fingerprint(state) != model_fingerprint(other)


def test_evaluation_run_links_to_its_training_run(tmp_path) -> None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "mlruns"))
    fingerprint = model_fingerprint({"w": torch.ones(3)})
    training = client.create_run(experiment, run_name="training:r")
    client.set_tag(training.info.run_id, tracking.FINGERPRINT_TAG, fingerprint)
    client.create_run(experiment, run_name="training:other")  # another model: not picked
    found = tracking.find_training_run(client, [experiment], fingerprint)
    assert found.info.run_id == training.info.run_id
    run = client.create_run(experiment, run_name="evaluation:r")
    tracking.link_to_training_run(client, run, found, "sqlite://")
    tags = client.get_run(run.info.run_id).data.tags
    assert tags[tracking.TRAINING_RUN_TAG] == training.info.run_id
    assert tags[tracking.PARENT_TAG] == training.info.run_id
    assert f"runs/{training.info.run_id}" in tags[tracking.NOTE_TAG]
    assert tracking.find_training_run(client, [experiment], "0" * 16) is None


def test_reach_lines_follow_multi_part_geometry() -> None:
    reaches = gpd.GeoDataFrame(
        {"id": [3, 1]},
        geometry=[
            shapely.MultiLineString([[(0, 0), (1, 1)], [(1, 1), (2, 0)]]),
            shapely.LineString([(5, 5), (6, 6), (7, 6)]),
        ],
    )
    lines = reach_lines(reaches, np.array([1, 3]))
    assert [len(s) for s in lines.segments] == [2, 2, 3] or [len(s) for s in lines.segments] == [3, 2, 2]
    assert sorted(lines.owner.tolist()) == [0, 1, 1]
    points = gpd.GeoDataFrame({"id": [1]}, geometry=gpd.points_from_xy([0.0], [0.0]))
    assert reach_lines(points, np.array([1])) is None


def test_pipeline_folders_in_run_order() -> None:
    assert pipeline_folders()[:4] == ["data_processing", "training", "evaluation", "routing"]


# ---------------------------------------------------------------- kedro run (in-process)


@pytest.fixture
def kedro_cli(kedro_test_session, tmp_path):
    """``invoke(*args) -> click Result`` of the project's ``kedro run`` in the test env."""
    from ddr_pipeline import cli

    with kedro_test_session("ddr_pipeline_first_hour"):  # writes tmp_path/conf/test/*.yml
        pass
    conf = tmp_path / "conf"

    def invoke(*args: str):
        result = CliRunner().invoke(cli.run, ["--env", "test", "--conf-source", str(conf), *args])
        return result

    return invoke


def _short(result) -> str:
    """The error paragraph of a failed run: exit status 1, no traceback, a few lines."""
    assert result.exit_code == 1, result.output
    assert "Traceback (most recent call last)" not in result.output
    assert "│" not in result.output  # no rich traceback box either
    error = result.output[result.output.index("Error: ") :]
    assert len(error.splitlines()) <= 6, error
    return error


def test_common_mistakes_end_in_one_short_message(kedro_cli, tmp_path) -> None:
    # training before data_processing: names the missing input and the step to run
    error = _short(kedro_cli("--pipelines", "training"))
    assert "drb.model_inputs" in error
    assert "run `kedro run --pipelines data_processing` first" in error
    # ... before any MLflow run is opened
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ddr_pipeline_first_hour")
    assert experiment is None or not client.search_runs([experiment.experiment_id])
    # a mistyped pipeline name lists the pipelines
    error = _short(kedro_cli("--pipelines", "traning"))
    assert "there is no pipeline 'traning' (did you mean 'training'?)" in error
    assert "data_processing, training, evaluation, routing" in error
    # a mistyped --params key
    error = _short(
        kedro_cli("--pipelines", "data_processing", "--params", "training.experiment.epoch=2")
    )
    assert "training.experiment.epoch (did you mean 'training.experiment.epochs'?)" in error


def test_failed_run_records_its_reason(kedro_test_session, tmp_path) -> None:
    with kedro_test_session("ddr_pipeline_failure") as session:
        context = session.load_context()
        conf = tmp_path / "conf" / "test" / "parameters_data_processing.yml"
        periods = context.params["data_processing"]["periods"]
        periods["test"] = ["1990-01-01", "1990-12-31"]  # beyond the inputs: fails in a node
        conf.write_text(yaml.safe_dump({"data_processing": {"periods": periods}}))
    with kedro_test_session("ddr_pipeline_failure") as session, pytest.raises(ValueError):
        session.run(pipeline_names=["data_processing"])
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ddr_pipeline_failure").experiment_id])
    assert run.info.status == "FAILED"
    assert run.info.run_name == "data_processing:drb"
    assert "1990" in run.data.tags[tracking.FAILURE_TAG]
    assert run.data.tags[tracking.NOTE_TAG].startswith("**Failed:**")


def test_unknown_pipeline_error_is_a_key_error() -> None:
    assert issubclass(UnknownPipelineError, KeyError)
    assert str(UnknownPipelineError("x y")) == "x y"


def test_default_pipeline_runs_everything_in_order() -> None:
    from ddr_pipeline.pipeline_registry import TRAINED_MODEL, default_pipeline, use_trained_model
    from ddr_pipeline.pipelines import evaluation, routing, training
    from ddr_pipeline.pipelines.data_processing import create_pipeline as data_processing

    parts = {
        "data_processing": data_processing(),
        "training": training.create_pipeline(),
        "evaluation": evaluation.create_pipeline(),
        "routing": routing.create_pipeline(),
    }
    pipeline = default_pipeline(parts)
    # only the raw data is read from outside the run: nothing is found on disk
    assert all(name.startswith(("drb.", "params:")) for name in pipeline.inputs())
    assert not {n for n in pipeline.inputs() if n.startswith("drb.")} & {
        "drb.model_inputs",
        "drb.normalization_stats",
    }
    order = [node.name for node in pipeline.nodes]  # topologically sorted
    loaders = [n for n in pipeline.nodes if n.func is use_trained_model]
    assert len(loaders) == 2 and all(n.inputs == [TRAINED_MODEL] for n in loaders)
    assert all(len(n.outputs) == 1 for n in loaders)
    trained = order.index("train_model")
    assert order.index("drb.assemble_model_inputs") < trained
    assert all(order.index(n.name) > trained for n in loaders)
    # the pipelines on their own still load the model named by their parameters
    assert "params:evaluation.model" in parts["evaluation"].inputs()


@pytest.mark.slow  # the four pipelines of the test env end to end (tens of seconds)
def test_kedro_run_runs_all_pipelines_and_compares_in_mlflow(kedro_test_session, tmp_path) -> None:
    """`kedro run` (env test, outputs in tmp_path): one graph, one MLflow run with headlines."""
    with kedro_test_session("ddr_pipeline_default") as session:
        session.run()
    data = tmp_path / "data"
    assert (data / "model_output" / "ddr-drb-training" / "model_test.zarr").exists()
    assert (data / "model_output" / "ddr-drb-training" / "routed_discharge.zarr").exists()
    assert (data / "reporting" / "ddr-drb-training" / "training" / "loss_curve.png").exists()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ddr_pipeline_default").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "default:ddr-drb-training"
    assert run.data.tags[tracking.TRAINING_RUN_TAG] == run.info.run_id  # trained in this run
    assert len(run.data.tags[tracking.FINGERPRINT_TAG]) == 16
    headline = {k for k in run.data.metrics if k.startswith("headline/")}
    assert tracking.PRIMARY_METRIC in headline
    assert "headline/summed_lateral_inflow.all.nse_median" in headline
    assert not any(k.startswith("evaluation.model.") for k in run.data.metrics)  # no per-stat charts
