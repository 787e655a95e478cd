"""The model store: checkpoint files, run names and MLflow model URIs -> trained model.

``model_store.load_model`` from an MLflow model URI, logged exactly as the training node does.

A tiny model is trained by :func:`ddr_pipeline.pipelines.training.nodes.train_model` inside an
MLflow run on a temporary sqlite store (it logs ``model_checkpoint/`` and the PyTorch ``model``
through :class:`~ddr_pipeline.training.MlflowMonitor`); the model loaded back through
``runs:/<id>/model``, ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` must predict exactly what the final
checkpoint predicts, without any local checkpoint.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from pipelines.evaluation import synthetic as syn

from ddr_pipeline import evaluation, model_store, simulation
from ddr_pipeline.checkpoints import CheckpointError, LoadedCheckpoint, load_checkpoint
from ddr_pipeline.config import load_training_config
from ddr_pipeline.data.batching import ModelInputs
from ddr_pipeline.pipelines.training.nodes import plan_batches, prepare_data, train_model

REGISTERED = "ddr-synthetic"
STATS = {
    "attributes": {a: {"mean": 50.0, "std": 10.0} for a in syn.ATTRIBUTES},
    "forcings": {f: {"mean": 0.0, "std": 1.0} for f in syn.FORCINGS},
}


def _params(models_dir: Path) -> dict[str, Any]:
    params = syn.training_params()
    params["experiment"] |= {"epochs": 1, "batch_size": 3, "rho": 20, "checkpoint_every": 100}
    params["experiment"]["learning_rate"] = {1: 0.05}
    params["monitoring"] = {"models_dir": str(models_dir), "progress_bar": False}
    return params


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Train + log one run; yields its run id, the final checkpoint path and the store paths."""
    root = tmp_path_factory.mktemp("mlflow_model")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("t", artifact_location=str(root / "artifacts"))
        config = load_training_config(_params(root / "models"))
        gauges = syn.gauges_table().assign(split="train")
        data = prepare_data(syn.model_inputs(), gauges, config)
        with mlflow.start_run(experiment_id=experiment) as run:
            _, _, summary = train_model(config, data, STATS, plan_batches(config, data))
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", REGISTERED).version
        mlflow.MlflowClient().set_registered_model_alias(REGISTERED, "champion", version)
        yield {
            "run_id": run.info.run_id,
            "checkpoint": Path(summary["final_checkpoint"]),
            "models_dir": root / "models",
            "run_name": str(config.run_name),
            "version": version,
        }
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def inputs() -> ModelInputs:
    return ModelInputs.from_dataset(syn.model_inputs())


def _predict(ckpt: LoadedCheckpoint, inputs: ModelInputs) -> np.ndarray:
    source = evaluation.trained_source(ckpt, inputs)
    settings = simulation.RoutingSettings.from_config(ckpt.config)
    problem = simulation.reach_problem(inputs)
    return simulation.rollout(inputs, problem, source, settings, 0, 60, chunk_days=30).daily


def _same_context(got: LoadedCheckpoint, expected: LoadedCheckpoint) -> None:
    assert got.config == expected.config
    assert got.normalization_stats == expected.normalization_stats
    assert got.attribute_names == expected.attribute_names
    assert got.forcing_names == expected.forcing_names
    assert (got.epoch, got.mini_batch) == (expected.epoch, expected.mini_batch)


@pytest.mark.parametrize("kind", ["runs", "version", "alias"])
def test_mlflow_uri_needs_no_local_checkpoint(
    logged: dict[str, Any], inputs: ModelInputs, tmp_path: Path, kind: str
) -> None:
    """Weights, configuration and normalisation stats all come from the MLflow run."""
    expected = load_checkpoint(logged["checkpoint"])
    uri = {
        "runs": f"runs:/{logged['run_id']}/model",
        "version": f"models:/{REGISTERED}/{logged['version']}",
        "alias": f"models:/{REGISTERED}@champion",
    }[kind]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{logged['models_dir'].parent / 'mlflow.db'}")
    try:
        if kind == "alias":  # the one-argument form dispatches MLflow URIs
            got = model_store.load_trained_model(uri, models_dir=tmp_path / "empty")
        else:
            got = model_store.load_model(
                run_name="some-other-run", mlflow_model_uri=uri, models_dir=tmp_path / "empty"
            )
    finally:
        mlflow.set_tracking_uri(previous)
    _same_context(got, expected)
    assert STATS.items() <= got.normalization_stats.items()
    assert not got.model.training
    prediction = _predict(got, inputs)
    assert np.isfinite(prediction).all()
    np.testing.assert_array_equal(prediction, _predict(expected, inputs))


def test_trained_weights_differ_from_initial(logged: dict[str, Any], inputs: ModelInputs) -> None:
    """Guard: the equality above compares trained weights, not two fresh initialisations."""
    from ddr_pipeline.models import build_models

    trained = load_checkpoint(logged["checkpoint"])
    fresh = build_models(trained.config).eval()
    untrained = dataclasses.replace(trained, model=fresh)
    assert not np.array_equal(_predict(trained, inputs), _predict(untrained, inputs))


def test_run_without_checkpoint_artifact_names_what_is_missing(tmp_path: Path) -> None:
    """A bare PyTorch model (no ``model_checkpoint/``, no local checkpoint) fails clearly."""
    from ddr_pipeline.models import build_models
    from ddr_pipeline.training.monitoring import log_pytorch_model

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("bare", artifact_location=str(tmp_path / "a"))
        model = build_models(load_training_config(syn.training_params()))
        with mlflow.start_run(experiment_id=experiment) as run:
            log_pytorch_model(model, "model")
        uri = f"runs:/{run.info.run_id}/model"
        with pytest.raises(CheckpointError, match=r"model_checkpoint.*" + run.info.run_id):
            model_store.load_model(mlflow_model_uri=uri, models_dir=tmp_path / "none")
    finally:
        mlflow.set_tracking_uri(previous)


def test_local_checkpoint_of_the_run_is_the_fallback(
    logged: dict[str, Any], inputs: ModelInputs, tmp_path: Path
) -> None:
    """Without the run's artifact, the latest local checkpoint of ``run_name`` gives the context."""
    from ddr_pipeline.training.monitoring import log_pytorch_model

    expected = load_checkpoint(logged["checkpoint"])
    models_dir = tmp_path / "models"
    local = models_dir / logged["run_name"] / "saved_models" / logged["checkpoint"].name
    local.parent.mkdir(parents=True)
    shutil.copyfile(logged["checkpoint"], local)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("bare", artifact_location=str(tmp_path / "a"))
        with mlflow.start_run(experiment_id=experiment) as run:
            log_pytorch_model(expected.model, "model")
        got = model_store.load_model(
            run_name=logged["run_name"],
            mlflow_model_uri=f"runs:/{run.info.run_id}/model",
            models_dir=models_dir,
        )
    finally:
        mlflow.set_tracking_uri(previous)
    _same_context(got, expected)
    np.testing.assert_array_equal(_predict(got, inputs), _predict(expected, inputs))


def test_load_trained_model_from_a_checkpoint_file_or_a_run_name(tmp_path: Path) -> None:
    path = syn.write_checkpoint(tmp_path)
    by_path = model_store.load_trained_model(path)
    by_run = model_store.load_trained_model("synthetic-run", models_dir=tmp_path)
    assert by_path.epoch == by_run.epoch == 1 and not by_run.model.training
    weights = zip(
        by_path.model.state_dict().values(), by_run.model.state_dict().values(), strict=True
    )
    assert all(torch.equal(a, b) for a, b in weights)
    with pytest.raises(FileNotFoundError, match="no-such-run"):
        model_store.load_trained_model("no-such-run", models_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        model_store.load_trained_model(tmp_path / "missing.pt")
