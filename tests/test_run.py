"""KedroSession smoke test: ``data_processing`` on the committed DRB demo data, env ``test``.

The ``kedro_test_session`` fixture (tests/conftest.py) copies the project's ``conf/`` to a temporary
folder whose ``test`` env points every output and the MLflow tracking database at ``tmp_path``, so
the run writes nothing into the repository.
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd

from ddr_pipeline.project.datasets import XarrayZarrDataset

GEODATASET = "drb"


def test_data_processing_session_run(kedro_test_session, tmp_path):
    with kedro_test_session("ddr_pipeline_test") as session:
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
