"""Shared pytest configuration: no Kedro telemetry, and the project root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The repository root (holds ``pyproject.toml`` and ``conf/``)."""
    return PROJECT_ROOT


@pytest.fixture(autouse=True)
def _no_leaked_mlflow_run():
    """End any MLflow run a test left active, so the next test can start its own."""
    yield
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()
