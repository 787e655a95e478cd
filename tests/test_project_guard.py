"""Runs stay inside the project: run names, MLflow artifact location, orphaned runs, telemetry."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from ddr_pipeline.config.training import check_run_name
from ddr_pipeline.project.guard import (
    HOST_TAG,
    PID_TAG,
    check_artifact_location,
    check_run_names,
    fail_orphaned_runs,
)


@pytest.mark.parametrize("name", ["../../../tmp/x", ".", "..", "-rf", ".hidden", "a/b", "a\\b", ""])
def test_unsafe_run_names_are_rejected_for_every_pipeline(name):
    params = {"run_name": "ok", "evaluation": {"run_name": name}, "routing": {"run_name": "ok"}}
    with pytest.raises(ValueError, match=r"parameter evaluation.run_name: run_name"):
        check_run_names(params)


@pytest.mark.parametrize("name", ["ddr-drb-training", "run.v2", "_x", "2026-11-29"])
def test_plain_run_names_pass(name):
    assert check_run_name(name) == name
    check_run_names({"training": {"run_name": name}})


def test_training_config_rejects_dot_names():
    from training.training_synthetic import twin_training_params

    from ddr_pipeline.config.training import load_training_config

    for name in (".", ".."):
        with pytest.raises(ValueError, match="run_name"):
            load_training_config({**twin_training_params(), "run_name": name})


def test_artifacts_outside_the_project_are_refused(tmp_path):
    project = tmp_path / "copy"
    project.mkdir()
    original = tmp_path / "original" / "mlruns"
    with pytest.raises(RuntimeError, match=r"outside this project.*another checkout"):
        check_artifact_location(original.as_uri(), project, "ddr_pipeline")
    check_artifact_location((project / "mlruns").as_uri(), project, "ddr_pipeline")
    check_artifact_location("s3://bucket/mlruns", project, "ddr_pipeline")
    # an explicitly configured location is the user's choice
    check_artifact_location(original.as_uri(), project, "ddr_pipeline", str(original))


def test_runs_of_killed_processes_are_marked_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("guard", artifact_location=str(tmp_path / "mlruns"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client = mlflow.MlflowClient()
    ids = {}
    for label, pid in (("dead", dead.pid), ("alive", os.getppid())):
        run = client.create_run(
            experiment, tags={HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
        )
        ids[label] = run.info.run_id
    assert fail_orphaned_runs(experiment) == [ids["dead"]]
    assert client.get_run(ids["dead"]).info.status == "FAILED"
    assert client.get_run(ids["alive"]).info.status == "RUNNING"


def test_telemetry_is_off_in_the_project_settings(project_root, monkeypatch):
    from kedro_telemetry.plugin import _check_for_telemetry_consent

    for var in ("DO_NOT_TRACK", "KEDRO_DISABLE_TELEMETRY", "MLFLOW_DISABLE_TELEMETRY"):
        monkeypatch.delenv(var, raising=False)
    assert _check_for_telemetry_consent(Path(project_root)) is False
    importlib.reload(importlib.import_module("ddr_pipeline.settings"))
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_the_guard_hook_is_registered_and_checks_run_names():
    from types import SimpleNamespace

    from ddr_pipeline import settings
    from ddr_pipeline.project.hooks import ProjectGuardHooks

    hooks = [hook for hook in settings.HOOKS if isinstance(hook, ProjectGuardHooks)]
    assert hooks
    context = SimpleNamespace(params={"run_name": "..", "routing": {"run_name": ".."}})
    with pytest.raises(ValueError, match=r"parameter run_name"):
        hooks[0].after_context_created(context)


def test_the_tracking_database_is_private(tmp_path):
    from ddr_pipeline.project.guard import restrict_tracking_db

    db = tmp_path / "mlflow.db"
    db.write_bytes(b"")
    db.chmod(0o644)
    assert restrict_tracking_db(f"sqlite:///{db}") == db
    assert db.stat().st_mode & 0o777 == 0o600
    assert restrict_tracking_db("http://localhost:5000") is None
