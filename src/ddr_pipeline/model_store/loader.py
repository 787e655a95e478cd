"""The model store: a checkpoint path, a training run or an MLflow model URI -> trained model.

Everything that runs a trained model (the evaluation and routing pipelines through
:mod:`ddr_pipeline.pipelines.model_loading`, notebooks, couplers) loads it here::

    from ddr_pipeline.model_store.loader import load_trained_model

    model = load_trained_model("data/06_models/run/trained_model.pt")  # a checkpoint file
    model = load_trained_model("runs:/<run_id>/model")                 # an MLflow model URI
    model = load_trained_model("ddr-drb-training")                     # a run's final model
    model.model, model.config, model.normalization_stats, model.attribute_names

The result is a :data:`LoadedCheckpoint` (the networks in eval mode on CPU plus the configuration
and data context they were trained with). :func:`load_model` is the keyword form the pipelines
use. The checkpoint format itself is :mod:`ddr_pipeline.model_store.checkpoints`.

Only weights are ever read (``torch.load(weights_only=True)``), never a pickle: a run name loads
``<run>/trained_model.pt`` (else its latest checkpoint) and refuses a file of another training
attempt than the run folder's; an MLflow URI loads the checkpoint inside the logged model
(:mod:`ddr_pipeline.model_store.mlflow_model`), or for models logged as pickles by earlier versions the
checkpoint its run logged under ``model_checkpoint/``; the pickled model itself is never loaded.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from ddr_pipeline.config.model_source import MLFLOW_SCHEMES, MODELS_DIR, ModelSource
from ddr_pipeline.model_store.checkpoints import (
    FINAL_MODEL_FILE,
    CheckpointError,
    LoadedCheckpoint,
    check_attempt,
    latest_checkpoint,
    load_checkpoint,
)

logger = logging.getLogger(__name__)



def load_trained_model(
    source: str | os.PathLike[str], *, models_dir: str | Path = MODELS_DIR
) -> LoadedCheckpoint:
    """Load a trained model from one ``source``: a checkpoint file, an MLflow URI or a run name.

    ``runs:/...`` and ``models:/...`` are MLflow model URIs; an existing file (or any ``.pt``
    path) is a checkpoint; anything else names a training run whose final model (else latest
    checkpoint) under ``models_dir`` is loaded. Raises ``FileNotFoundError`` / :class:`CheckpointError` naming
    what was searched.
    """
    text = str(source)
    if text.startswith(MLFLOW_SCHEMES):
        return load_model(ModelSource(mlflow_model_uri=text, models_dir=str(models_dir)))
    if Path(text).suffix == ".pt" or Path(text).is_file():
        return load_model(ModelSource(checkpoint=text))
    return load_model(ModelSource(run_name=text, models_dir=str(models_dir)))


def resolve_checkpoint(
    checkpoint: str | None, run_name: str | None, models_dir: str | Path
) -> Path:
    """The checkpoint file to load: ``checkpoint`` if given, else the final model of ``run_name``
    (``<run>/trained_model.pt``), else the latest checkpoint of that run.

    Raises ``FileNotFoundError`` naming the path or run folder searched.
    """
    if checkpoint:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        return path
    if not run_name:
        raise ValueError("give a checkpoint path, a training run name or an MLflow model URI")
    final = Path(models_dir) / run_name / FINAL_MODEL_FILE
    if final.is_file():
        return final
    latest = latest_checkpoint(models_dir, run_name)
    if latest is None:
        folder = Path(models_dir) / run_name / "saved_models"
        raise FileNotFoundError(
            f"no checkpoint of run {run_name!r} in {folder} (train it first, or set the "
            "checkpoint path / MLflow model URI)"
        )
    return latest


#: Artifact folder of a training run holding its final checkpoint (training pipeline).
CHECKPOINT_ARTIFACT = "model_checkpoint"


def load_model(source: ModelSource) -> LoadedCheckpoint:
    """Load a trained model from a checkpoint path, a run's final model or an MLflow URI.

    Priority: ``checkpoint`` > ``mlflow_model_uri`` > final model (else latest checkpoint) of
    ``run_name``, which must belong to the attempt recorded in the run folder. An MLflow URI
    (``runs:/<id>/model``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``) is read
    from the tracking store set by ``MLFLOW_TRACKING_URI`` / ``mlflow.set_tracking_uri``: the
    model's weights-only checkpoint, else the one its run logged as ``model_checkpoint/``; a
    pickled MLflow model is never unpickled (it could run code). Raises
    :class:`CheckpointError` naming the model and run when neither exists.
    """
    if source.checkpoint or not source.mlflow_model_uri:
        path = resolve_checkpoint(source.checkpoint, source.run_name, source.models_dir)
        logger.info("loading checkpoint %s", path)
        loaded = load_checkpoint(path)
        if not source.checkpoint and source.run_name:
            check_attempt(loaded.payload, source.models_dir, source.run_name, path)
        return loaded
    return _load_mlflow_model(source.mlflow_model_uri)


def _load_mlflow_model(mlflow_model_uri: str) -> LoadedCheckpoint:
    """The weights-only checkpoint of an MLflow model, else the one its training run logged."""
    with tempfile.TemporaryDirectory(prefix="ddr_mlflow_model_") as folder:
        loaded = _model_checkpoint(mlflow_model_uri, folder)
        if loaded is not None:
            return loaded
    from mlflow.models import get_model_info

    run_id = get_model_info(mlflow_model_uri).run_id  # reads the MLmodel YAML only
    loaded = _run_checkpoint(run_id) if run_id else None
    if loaded is None:
        raise CheckpointError(
            f"MLflow model {mlflow_model_uri} holds no weights-only checkpoint, nor does its "
            f"training run {run_id or '(none recorded)'} under {CHECKPOINT_ARTIFACT}/; a "
            "pickled MLflow model is never loaded (it could run code)"
        )
    logger.info("loaded MLflow model %s from its run's %s/", mlflow_model_uri, CHECKPOINT_ARTIFACT)
    return loaded


def _model_checkpoint(uri: str, folder: str) -> LoadedCheckpoint | None:
    """The checkpoint inside the MLflow model ``uri`` (downloaded to ``folder``), or None."""
    from mlflow.artifacts import download_artifacts

    from ddr_pipeline.model_store.mlflow_model import checkpoint_in_model

    path = checkpoint_in_model(download_artifacts(artifact_uri=uri, dst_path=folder))
    if path is None:
        return None
    logger.info("loading the checkpoint of MLflow model %s", uri)
    return load_checkpoint(path)


def _run_checkpoint(run_id: str) -> LoadedCheckpoint | None:
    """The ``.pt`` checkpoint logged under ``model_checkpoint/`` by run ``run_id``, or None."""
    import mlflow
    from mlflow.artifacts import download_artifacts

    listed = mlflow.MlflowClient().list_artifacts(run_id, CHECKPOINT_ARTIFACT)
    files = sorted(a.path for a in listed if not a.is_dir and a.path.endswith(".pt"))
    if not files:
        return None
    if len(files) > 1:
        raise CheckpointError(
            f"MLflow run {run_id} has {len(files)} checkpoints under {CHECKPOINT_ARTIFACT}/ "
            f"({files}); expected one"
        )
    with tempfile.TemporaryDirectory(prefix="ddr_mlflow_ckpt_") as folder:
        path = download_artifacts(run_id=run_id, artifact_path=files[0], dst_path=folder)
        logger.info("loading checkpoint %s of MLflow run %s", files[0], run_id)
        return load_checkpoint(path)
