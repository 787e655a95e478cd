"""KedroSession smoke test: ``data_processing`` then ``training`` (env ``test``, tiny config).

The project's ``conf/`` is copied to a temporary folder whose ``test`` env points every output
and the MLflow tracking database at ``tmp_path``, so nothing is written into the repository.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import mlflow.pytorch
import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from ddr_pipeline.training import latest_checkpoint, load_checkpoint

RUN = "ddr-drb-training"


@pytest.fixture
def conf_source(project_root: Path, tmp_path: Path) -> Path:
    if not (project_root / "data" / "01_raw" / "drb" / "reaches.parquet").exists():
        pytest.skip("the DRB demo data is not in data/01_raw/drb")
    conf = tmp_path / "conf"
    shutil.copytree(project_root / "conf", conf, ignore=shutil.ignore_patterns("local"))
    out = tmp_path / "data"
    paths = {"raw": str(project_root / "data" / "01_raw")}
    for key in ("intermediate", "model_input", "models", "model_output", "reporting"):
        paths[key] = str(out / key)
    (conf / "test" / "globals.yml").write_text(yaml.safe_dump({"paths": paths}))
    mlflow_conf = {
        "server": {"mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        "tracking": {
            "experiment": {
                "name": "ddr_pipeline_training_test",
                "create_experiment_kwargs": {"artifact_location": str(tmp_path / "mlruns")},
            }
        },
    }
    (conf / "test" / "mlflow.yml").write_text(yaml.safe_dump(mlflow_conf))
    return conf


@pytest.fixture
def restore_mlflow_uri():
    previous = mlflow.get_tracking_uri()
    yield
    while mlflow.active_run() is not None:  # end it in the test's own tracking store
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.mark.usefixtures("restore_mlflow_uri")
def test_training_session_run(project_root, conf_source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bootstrap_project(project_root)
    with KedroSession.create(
        project_path=project_root, env="test", conf_source=str(conf_source)
    ) as session:
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
    assert {"val_nse_median", "batch_kge_median", "n_median", "d_gw_max"} <= set(run.data.metrics)
    assert "training.test_all_nse_median" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model_checkpoint", "training"} <= artifacts
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model")
    assert set(model.state_dict()) == set(loaded.model.state_dict())
