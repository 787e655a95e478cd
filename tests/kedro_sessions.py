"""A KedroSession factory on the DRB demo data in a temporary folder (shared by test fixtures)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@contextlib.contextmanager
def kedro_session_factory(
    project_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Any]]:
    """Factory ``(experiment, runtime_params=None) -> KedroSession`` on the DRB demo data, env
    ``test``, in ``tmp_path``.

    ``conf/`` is copied to ``tmp_path/conf`` whose ``test`` env writes every output under
    ``tmp_path/data/<key>`` and MLflow runs into ``sqlite:///tmp_path/mlflow.db`` (experiment
    ``experiment``, artifacts in ``tmp_path/mlruns``); the working directory is ``tmp_path``
    (kedro-viz hooks write ``.viz/`` there). MLflow's global tracking URI, which kedro-mlflow
    sets, is restored afterwards, and so is ``geopandas.options.io_engine`` (importing
    kedro-datasets' geopandas dataset sets it to ``fiona``, which is not installed). Skips when
    the DRB demo data is absent.
    """
    import geopandas
    import mlflow
    import mlflow.tracking._tracking_service.utils as tracking_utils
    import yaml
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    if not (project_root / "data" / "01_raw" / "drb" / "reaches.parquet").exists():
        pytest.skip("the DRB demo data is not in data/01_raw/drb")
    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    io_engine = geopandas.options.io_engine
    monkeypatch.chdir(tmp_path)
    bootstrap_project(project_root)

    def create(experiment: str, runtime_params: dict[str, Any] | None = None) -> KedroSession:
        conf = tmp_path / "conf"
        if not conf.exists():
            shutil.copytree(project_root / "conf", conf, ignore=shutil.ignore_patterns("local"))
        keys = ("intermediate", "model_input", "models", "model_output", "reporting")
        paths = {"raw": str(project_root / "data" / "01_raw")}
        paths |= {key: str(tmp_path / "data" / key) for key in keys}
        (conf / "test" / "globals.yml").write_text(yaml.safe_dump({"paths": paths}))
        mlflow_conf = {
            "server": {"mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
            "tracking": {
                "experiment": {
                    "name": experiment,
                    "create_experiment_kwargs": {"artifact_location": str(tmp_path / "mlruns")},
                }
            },
        }
        (conf / "test" / "mlflow.yml").write_text(yaml.safe_dump(mlflow_conf))
        return KedroSession.create(
            project_path=project_root,
            env="test",
            conf_source=str(conf),
            runtime_params=runtime_params,
        )

    yield create
    while mlflow.active_run() is not None:  # end it in the test's own tracking store
        mlflow.end_run()
    geopandas.options.io_engine = io_engine
    if previous_env is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous_env
