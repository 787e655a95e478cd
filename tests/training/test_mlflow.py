"""MLflow monitoring: metrics with steps and a weights-only model that loads back for inference."""

from __future__ import annotations

import math

import mlflow
import pytest
import torch
from training_synthetic import full_training_params

from ddr_pipeline.config.model_source import ModelSource
from ddr_pipeline.model_store.loader import load_model
from ddr_pipeline.training import MlflowMonitor, Trainer


@pytest.fixture
def tracking(tmp_path):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))
    yield experiment
    mlflow.set_tracking_uri(previous)


def test_metrics_artifacts_and_weights_only_model_round_trip(tracking, tmp_path, make_trainer):
    params = full_training_params()
    trainer: Trainer = make_trainer(params, models_dir=tmp_path / "models")
    model = trainer.model
    file = trainer.save(epoch=1, mini_batch=0, epoch_complete=False)
    monitor = MlflowMonitor(log_checkpoints=False)
    with mlflow.start_run(experiment_id=tracking) as run:
        monitor.log_metrics({"loss": 2.0, "skip": math.nan}, step=0)
        monitor.log_metrics({"loss": 1.0}, step=1)
        monitor.log_artifact(file, "checkpoints")  # disabled: not uploaded
        monitor.log_artifact(file, "model_checkpoint")
        monitor.log_model(file, "model")
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (1, 1.0)]
    assert not client.get_metric_history(run.info.run_id, "skip")
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "model_checkpoint" in names and "checkpoints" not in names

    loaded = load_model(ModelSource(mlflow_model_uri=f"runs:/{run.info.run_id}/model")).model
    attributes = torch.randn(7, 2)
    forcings = torch.randn(5, 7, 3)
    model.eval()
    with torch.no_grad():
        expected = model(attributes, forcings, attributes)
        got = loaded(attributes, forcings, attributes)
    for name, value in expected.static.items():
        assert torch.equal(value, got.static[name])
    for name, value in expected.daily.items():
        assert torch.equal(value, got.daily[name])
