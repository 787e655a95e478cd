"""scripts/browser_check.py in headless Chromium (skipped where no Chromium binary is installed).

Builds the Kedro-Viz site of the project and checks it (all pipelines on one page) and the MLflow
UI on a small tracking database holding a training run and an evaluation run with headline
metrics.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mlflow
import pytest

from ddr_pipeline.project import tracking

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "browser_check.py"
spec = importlib.util.spec_from_file_location("browser_check", SCRIPT)
browser_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(browser_check)

pytestmark = pytest.mark.skipif(
    browser_check.find_chromium() is None, reason="no Chromium binary (CHROMIUM or PATH)"
)


def test_viz_and_mlflow_render(tmp_path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("smoke", artifact_location=str(tmp_path / "mlruns"))
    training = client.create_run(experiment, run_name="training:smoke-run")
    evaluation = client.create_run(experiment, run_name="evaluation:smoke-run")
    for name, value in (("headline/model.heldout.nse_median", 0.61), ("headline/n_gauges.all", 57)):
        client.log_metric(evaluation.info.run_id, name, value)
    client.set_tag(evaluation.info.run_id, tracking.TRAINING_RUN_TAG, training.info.run_id)
    for run in (training, evaluation):
        client.set_terminated(run.info.run_id)

    # one page with every pipeline keeps the test short (the script's default loads each)
    args = ["--tracking-uri", uri, "--experiment", "smoke", "--viz-pipelines", "__default__"]
    status = browser_check.main(args)
    captured = capsys.readouterr()
    output = captured.out
    assert status == 0, output + captured.err
    assert "ok  Kedro-Viz pipeline __default__" in output
    assert "latest runs rendered ['evaluation:smoke-run', 'training:smoke-run']" in output
    assert "ok  MLflow run evaluation:smoke-run: 2 headline metrics rendered" in output
