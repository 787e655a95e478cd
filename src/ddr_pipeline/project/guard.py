"""Keep every run inside the project and leave no run marked as running (:class:`ProjectGuardHooks`).

* every ``run_name`` parameter (``--params run_name=...`` and the pipelines' ``*.run_name``) is
  checked once, before any node runs, with :func:`ddr_pipeline.config.training.check_run_name`;
* the MLflow experiment must store its artifacts under this project's root (a copied or moved
  project still points at the original checkout: the run stops and says how to fix it);
* a local SQLite tracking database (``mlflow.db``) is made readable by its owner only;
* MLflow runs left ``RUNNING`` by a killed process on this host are marked ``FAILED`` at the next
  start (each run is tagged with the host and process id that ran it);
* temporaries left under the data folders by killed writers are removed, and a store moved aside
  by a killed two-rename replacement is put back (:func:`~ddr_pipeline.data.io.clean_stale_temporaries`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
from mlflow.entities import RunStatus

from ddr_pipeline.config.training import check_run_name
from ddr_pipeline.data.io import process_alive

logger = logging.getLogger(__name__)

HOST_TAG = "ddr.host"
PID_TAG = "ddr.pid"


def _run_names(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in params.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _run_names(value, f"{path}.")
        elif key == "run_name" and value is not None:
            yield path, value


def check_run_names(params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the parameter whose run name is not a plain folder name."""
    for path, name in _run_names(params):
        try:
            check_run_name(name)
        except ValueError as error:
            raise ValueError(f"parameter {path}: {error}") from None


def artifact_folder(artifact_location: str) -> Path | None:
    """Local folder of an MLflow artifact location (``None`` for remote stores)."""
    parsed = urlparse(artifact_location)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # a plain path (or a Windows drive)
        return Path(artifact_location)
    return None


def check_artifact_location(
    artifact_location: str, project_path: Path, experiment: str, configured: str | None = None
) -> None:
    """Raise ``RuntimeError`` when a local artifact location lies outside ``project_path``.

    A location configured explicitly (``create_experiment_kwargs.artifact_location``) is the
    user's choice and allowed wherever it is.
    """
    folder = artifact_folder(artifact_location)
    root = project_path.resolve()
    if folder is None or folder.resolve().is_relative_to(root):
        return
    chosen = artifact_folder(configured) if configured else None
    if chosen is not None and chosen.resolve() == folder.resolve():
        return
    raise RuntimeError(
        f"MLflow experiment {experiment!r} stores artifacts in {folder}, outside this project "
        f"({root}): mlflow.db was created in another checkout (a copied or moved project). Use a "
        "new experiment here (tracking.experiment.name in conf/local/mlflow.yml) or remove "
        "mlflow.db and mlruns/ to start afresh."
    )


def fail_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark ``RUNNING`` runs of dead processes on this host ``FAILED``; return their ids."""
    host = socket.gethostname()
    runs = mlflow.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        output_format="list",
    )
    client = mlflow.MlflowClient()
    orphaned = []
    for run in runs:
        pid = run.data.tags.get(PID_TAG, "")
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
            orphaned.append(run.info.run_id)
    if orphaned:
        logger.warning(
            "Marked %d MLflow run(s) of killed processes FAILED: %s", len(orphaned), orphaned
        )
    return orphaned


def restrict_tracking_db(tracking_uri: str) -> Path | None:
    """Make a local SQLite tracking database readable by its owner only; return its path."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    path = Path(tracking_uri[len(prefix) :])
    if not path.is_file():
        return None
    path.chmod(0o600)
    return path


def data_roots(context: Any) -> list[Path]:
    """The project's ``data/`` folder and every existing folder of ``globals.paths``."""
    project = Path(context.project_path)
    paths = context.config_loader["globals"].get("paths", {})
    roots = {project / "data", *(project / str(p) for p in paths.values())}
    return sorted(root for root in roots if root.is_dir())


def check_tracking(context: Any) -> None:
    """Artifact location inside the project, orphaned runs failed, tracking database private.

    Needs kedro-mlflow's setup (``context.mlflow``, the tracking URI and the experiment).
    """
    config = getattr(context, "mlflow", None)
    if config is None:
        return
    restrict_tracking_db(mlflow.get_tracking_uri())
    name = config.tracking.experiment.name
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        return
    configured = config.tracking.experiment.create_experiment_kwargs.artifact_location
    check_artifact_location(
        experiment.artifact_location, Path(context.project_path), name, configured
    )
    fail_orphaned_runs(experiment.experiment_id)


def tag_active_run() -> None:
    """Tag the active MLflow run with this host and process id (see :func:`fail_orphaned_runs`)."""
    if mlflow.active_run() is not None:
        mlflow.set_tags({HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())})
