"""KedroSession smoke test: ``data_processing`` then ``training`` (env ``test``, tiny config).

The ``kedro_test_session`` fixture (tests/conftest.py) copies the project's ``conf/`` to a
temporary folder whose ``test`` env points every output and the MLflow tracking database at
``tmp_path``, so nothing is written into the repository.
"""

from __future__ import annotations

import mlflow
import pandas as pd
import torch

from ddr_pipeline.config.model_source import ModelSource
from ddr_pipeline.model_store.checkpoints import latest_checkpoint, load_checkpoint
from ddr_pipeline.model_store.loader import load_model

RUN = "ddr-drb-training"


def test_training_session_run(kedro_test_session, tmp_path):
    with kedro_test_session("ddr_pipeline_training_test") as session:
        session.run(pipeline_names=["data_processing", "training"])

    models = tmp_path / "data" / "models"
    final = latest_checkpoint(models, RUN)
    assert final is not None and final.name == f"ddr_{RUN}_epoch_1_mb_2.pt"
    loaded = load_checkpoint(models / RUN / "trained_model.pt")
    assert loaded.config.experiment.epochs == 1 and loaded.payload["global_step"] == 3
    report = tmp_path / "data" / "reporting" / RUN / "training"
    history = pd.read_parquet(report / "history.parquet")
    assert len(history) == 3
    scores = pd.read_parquet(report / "test_scores.parquet")
    assert scores["well_observed"].sum() > 50

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ddr_pipeline_training_test")
    runs = client.search_runs([experiment.experiment_id])
    (run,) = [r for r in runs if "training.experiment.batch_size" in r.data.params]
    assert run.data.params["training.experiment.batch_size"] == "48"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 3
    assert {"val_nse_median", "batch_kge_median", "n_median", "top_width_max"} <= set(
        run.data.metrics
    )
    assert "training.test_all_nse_median" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model_checkpoint", "training"} <= artifacts
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = load_model(ModelSource(mlflow_model_uri=f"runs:/{run.info.run_id}/model")).model
    for name, value in loaded.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
