"""The model store: checkpoint files, run names and MLflow model URIs -> trained model.

``load_model`` from an MLflow model URI, logged exactly as the training node does.

A tiny model is trained by :func:`ddr_pipeline.pipelines.training.nodes.train_model` inside an
MLflow run on a temporary sqlite store (it logs ``model_checkpoint/`` and the ``model``
through :class:`~ddr_pipeline.training.MlflowMonitor`, weights only); the model loaded back through
``runs:/<id>/model``, ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` must predict exactly what the final
checkpoint predicts, without any local checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from pipelines.evaluation import synthetic as syn

from ddr_pipeline import simulation
from ddr_pipeline.config.model_source import ModelSource
from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.inference.gauges import PredictionSettings, trained_source
from ddr_pipeline.inference.reaches import route_reaches
from ddr_pipeline.model_store.checkpoints import (
    FINAL_MODEL_FILE,
    CheckpointError,
    LoadedCheckpoint,
    checkpoint_path,
    claim_run_folder,
    load_checkpoint,
    read_checkpoint,
    run_folder_lock,
    save_checkpoint,
)
from ddr_pipeline.model_store.loader import load_model, load_trained_model
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
    source = trained_source(ckpt, inputs)
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
            got = load_trained_model(uri, models_dir=tmp_path / "empty")
        else:
            got = load_model(
                ModelSource(
                    run_name="some-other-run", mlflow_model_uri=uri, models_dir=str(tmp_path / "empty")
                )
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


class _Exploit(torch.nn.Module):
    """A module whose unpickling runs a shell command (creates ``marker``)."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickled_mlflow_model_runs_no_code(tmp_path: Path) -> None:
    """A pickled PyTorch model (no weights-only checkpoint anywhere) is refused, never loaded."""
    import mlflow.pytorch

    marker = tmp_path / "pwned"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("crafted", artifact_location=str(tmp_path / "a"))
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.pytorch.log_model(_Exploit(marker), name="model", serialization_format="pickle")
        marker.unlink(missing_ok=True)  # logging may unpickle it (signature checks): not ours
        uri = f"runs:/{run.info.run_id}/model"
        with pytest.raises(CheckpointError, match=r"never loaded.*could run code"):
            load_model(ModelSource(mlflow_model_uri=uri, models_dir=str(tmp_path / "none")))
        with pytest.raises(CheckpointError, match="never loaded"):
            load_trained_model(uri, models_dir=tmp_path / "none")
    finally:
        mlflow.set_tracking_uri(previous)
    assert not marker.exists()


def test_the_logged_model_holds_no_pickle_and_predicts(
    logged: dict[str, Any], inputs: ModelInputs, tmp_path: Path
) -> None:
    """The MLflow model is code + weights-only checkpoint; its pyfunc predict routes a store."""
    from ddr_pipeline.data.io import write_zarr

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{logged['models_dir'].parent / 'mlflow.db'}")
    try:
        uri = f"runs:/{logged['run_id']}/model"
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp_path))
        assert not [f for f in folder.rglob("*") if f.suffix in {".pkl", ".pickle"}]
        store = tmp_path / "model_inputs.zarr"
        write_zarr(syn.model_inputs(), store)
        request = {"model_inputs": str(store), "start": "1980-01-01", "end": "1980-01-30"}
        got = mlflow.pyfunc.load_model(uri).predict([{**request, "warmup_days": 31}])
    finally:
        mlflow.set_tracking_uri(previous)
    expected = route_reaches(
        load_checkpoint(logged["checkpoint"]),
        inputs,
        ("1980-01-01", "1980-01-30"),
        PredictionSettings(warmup_days=31, chunk_days=365),
        None,
        "x",
    )["discharge"]
    assert list(got.columns) == ["reach_id", "time", "discharge"]
    np.testing.assert_array_equal(
        got["discharge"].to_numpy(), expected.to_dataframe()["discharge"].to_numpy()
    )


def test_a_run_name_loads_its_final_model_and_refuses_another_attempts_files(
    tmp_path: Path,
) -> None:
    """``trained_model.pt`` wins over higher-numbered checkpoints; other attempts are refused."""
    path = syn.write_checkpoint(tmp_path)
    final = path.parent.parent / FINAL_MODEL_FILE
    payload = read_checkpoint(path)
    save_checkpoint({**payload, "attempt": {"id": "mine", "mlflow_run_id": None}}, final)
    claim_run_folder(tmp_path, "synthetic-run", "mine", resuming=True)
    foreign = dict(payload, attempt={"id": "another-attempt", "mlflow_run_id": None})
    foreign["model_state_dict"] = {
        k: v + 1 if v.is_floating_point() else v for k, v in payload["model_state_dict"].items()
    }
    save_checkpoint(foreign, checkpoint_path(tmp_path, "synthetic-run", 9, 0))
    loaded = load_trained_model("synthetic-run", models_dir=tmp_path)
    for key, value in payload["model_state_dict"].items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    save_checkpoint(foreign, final)
    with pytest.raises(CheckpointError, match="written by training attempt another-attempt"):
        load_model(ModelSource(run_name="synthetic-run", models_dir=str(tmp_path)))


def test_a_run_still_training_or_unfinished_is_refused_unless_a_checkpoint_is_named(
    tmp_path: Path,
) -> None:
    """Finding 4 of issue 26: evaluating a run while it trains scored an epoch-23 checkpoint."""
    path = syn.write_checkpoint(tmp_path, final=False)
    with pytest.raises(CheckpointError, match=r"no final model .*name its latest checkpoint"):
        load_model(ModelSource(run_name="synthetic-run", models_dir=str(tmp_path)))
    save_checkpoint(read_checkpoint(path), path.parent.parent / FINAL_MODEL_FILE)
    with run_folder_lock(tmp_path, "synthetic-run"):
        with pytest.raises(CheckpointError, match="'synthetic-run' is still training"):
            load_trained_model("synthetic-run", models_dir=tmp_path)
        named = ModelSource(checkpoint=str(path), run_name="synthetic-run")
        assert load_model(named).epoch == 1
    assert load_trained_model("synthetic-run", models_dir=tmp_path).epoch == 1


def test_load_trained_model_from_a_checkpoint_file_or_a_run_name(tmp_path: Path) -> None:
    path = syn.write_checkpoint(tmp_path)
    by_path = load_trained_model(path)
    by_run = load_trained_model("synthetic-run", models_dir=tmp_path)
    assert by_path.epoch == by_run.epoch == 1 and not by_run.model.training
    weights = zip(
        by_path.model.state_dict().values(), by_run.model.state_dict().values(), strict=True
    )
    assert all(torch.equal(a, b) for a, b in weights)
    with pytest.raises(FileNotFoundError, match="no-such-run"):
        load_trained_model("no-such-run", models_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_trained_model(tmp_path / "missing.pt")
