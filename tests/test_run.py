"""KedroSession smoke test: ``data_processing`` on the committed DRB demo data, env ``test``.

The project's ``conf/`` is copied to a temporary folder whose ``test`` env points every output and
the MLflow tracking database at ``tmp_path``, so the run writes nothing into the repository.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import mlflow.tracking._tracking_service.utils as mlflow_tracking_utils
import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from ddr_pipeline.datasets import XarrayZarrDataset

GEODATASET = "drb"


@pytest.fixture
def conf_source(project_root: Path, tmp_path: Path) -> Path:
    """A copy of ``conf/`` whose ``test`` env writes outputs and MLflow runs under ``tmp_path``."""
    if not (project_root / "data" / "01_raw" / GEODATASET / "reaches.parquet").exists():
        pytest.skip("the DRB demo data is not in data/01_raw/drb")
    conf = tmp_path / "conf"
    shutil.copytree(project_root / "conf", conf, ignore=shutil.ignore_patterns("local"))
    out = tmp_path / "data"
    paths = {
        "raw": str(project_root / "data" / "01_raw"),
        **{
            key: str(out / key)
            for key in ("intermediate", "model_input", "models", "model_output", "reporting")
        },
    }
    (conf / "test" / "globals.yml").write_text(yaml.safe_dump({"paths": paths}))
    mlflow_conf = {
        "server": {"mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        "tracking": {
            "experiment": {
                "name": "ddr_pipeline_test",
                "create_experiment_kwargs": {"artifact_location": str(tmp_path / "mlruns")},
            }
        },
    }
    (conf / "test" / "mlflow.yml").write_text(yaml.safe_dump(mlflow_conf))
    return conf


@pytest.fixture
def restore_mlflow_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """kedro-mlflow sets MLflow's global tracking URI: restore MLflow's own state afterwards."""
    monkeypatch.setattr(mlflow_tracking_utils, "_tracking_uri", mlflow_tracking_utils._tracking_uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.mark.usefixtures("restore_mlflow_uri")
def test_data_processing_session_run(project_root, conf_source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # kedro-viz hooks write .viz/ into the working directory
    bootstrap_project(project_root)
    with KedroSession.create(
        project_path=project_root, env="test", conf_source=str(conf_source)
    ) as session:
        context = session.load_context()
        assert context.params["data_processing"]["periods"]["train"] == ["1979-01-01", "1979-12-31"]
        session.run(pipeline_names=["data_processing"])

    out = tmp_path / "data" / "model_input" / GEODATASET
    ds = XarrayZarrDataset(filepath=str(out / "model_inputs.zarr")).load()
    assert ds.sizes["time"] == 731 and ds.sizes["reach_id"] > 0
    assert ds["lateral_inflow"].notnull().all()
    gauges = pd.read_parquet(out / "gauges.parquet")
    assert set(gauges["split"]) == {"train", "validation"}
    (stats_file,) = (out / "normalization_stats.json").glob("*/normalization_stats.json")
    stats = json.loads(stats_file.read_text())
    assert stats["computed_on"]["period"] == ["1979-01-01", "1979-12-31"]
    assert set(stats["forcings"]) == {"P", "PET", "Temp"}

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs(
        [client.get_experiment_by_name("ddr_pipeline_test").experiment_id]
    )
    assert run.data.params["data_processing.gauges.validation_fraction"] == "0.2"
    assert run.data.metrics[f"data_processing.{GEODATASET}.n_reaches"] == ds.sizes["reach_id"]
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, f"data_processing/{GEODATASET}")]
    assert f"data_processing/{GEODATASET}/normalization_stats.json" in artifacts
