"""Shared pytest configuration: no Kedro telemetry, the project root, a test KedroSession."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kedro_sessions import kedro_session_factory

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
    mlflow = sys.modules.get("mlflow")  # not imported: no run can be active (and no MLflow needed)
    while mlflow is not None and mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def kedro_test_session(
    project_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Any]]:
    """Factory ``(experiment) -> KedroSession`` on the DRB demo data, env ``test``, in ``tmp_path``
    (:func:`kedro_sessions.kedro_session_factory`)."""
    with kedro_session_factory(project_root, tmp_path, monkeypatch) as create:
        yield create
