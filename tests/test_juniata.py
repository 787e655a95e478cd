"""The Juniata sample end to end: ``kedro run --env juniata`` data_processing -> training ->
evaluation on the committed conversion of DDR's bundle (what ``make juniata`` runs), outputs in a
temporary folder. Training is shortened to 2 steps; the summed-Q' baseline of the evaluation must
be DDR's published 0.695 NSE / 0.819 KGE on the test years."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUN = "ddr-juniata-test"


def _conf(tmp_path: Path) -> Path:
    """conf/ copied, the juniata env's outputs and MLflow store moved into ``tmp_path``."""
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    keys = ("intermediate", "model_input", "models", "model_output", "reporting")
    paths = {"raw": str(ROOT / "data" / "01_raw")} | {k: str(tmp_path / k) for k in keys}
    (conf / "juniata" / "globals.yml").write_text(yaml.safe_dump({"paths": paths}))
    mlflow = {
        "server": {"mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        "tracking": {
            "experiment": {
                "name": "juniata_test",
                "create_experiment_kwargs": {"artifact_location": str(tmp_path / "mlruns")},
            }
        },
    }
    (conf / "juniata" / "mlflow.yml").write_text(yaml.safe_dump(mlflow))
    return conf


def _kedro(conf: Path, pipeline: str, params: str) -> None:
    env = {**os.environ, "DDR_GEODATASET": "juniata", "KEDRO_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "kedro", "run", "--pipelines", pipeline, "--env", "juniata"]
    command += ["--conf-source", str(conf), "--params", params]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_juniata_environment_end_to_end(tmp_path):
    if not (ROOT / "data" / "01_raw" / "juniata" / "reaches.parquet").exists():
        pytest.skip("the Juniata sample is not in data/01_raw/juniata")
    conf = _conf(tmp_path)
    params = (
        f"run_name={RUN},training.experiment.epochs=2,training.monitoring.progress_bar=false,"
        "training.monitoring.log_checkpoints=false"
    )
    for pipeline in ("data_processing", "training", "evaluation"):
        _kedro(conf, pipeline, params)
    table = pd.read_csv(tmp_path / "reporting" / RUN / "evaluation" / "comparison.csv")
    scores = table[(table["subset"] == "all") & table["metric"].isin(["nse", "kge"])]
    scores = scores.set_index(["model", "metric"])["median"]
    assert round(scores[("summed_lateral_inflow", "nse")], 3) == 0.695
    assert round(scores[("summed_lateral_inflow", "kge")], 3) == 0.819
    assert scores[("model", "nse")] > 0.0  # two steps: it runs, not a skill claim
    inputs = tmp_path / "model_input" / "juniata" / "model_inputs.zarr"
    assert inputs.exists()
