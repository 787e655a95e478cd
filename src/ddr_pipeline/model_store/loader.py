"""The model store: a checkpoint path, a training run or an MLflow model URI -> trained model.

Everything that runs a trained model (the evaluation and routing pipelines through
:mod:`ddr_pipeline.pipelines.model_loading`, notebooks, couplers) loads it here::

    from ddr_pipeline.model_store.loader import load_trained_model

    model = load_trained_model("data/06_models/run/trained_model.pt")  # a checkpoint file
    model = load_trained_model("runs:/<run_id>/model")                 # an MLflow model URI
    model = load_trained_model("ddr-drb-training")                     # a finished run's model
    model.model, model.config, model.normalization_stats, model.attribute_names

The result is a :data:`LoadedCheckpoint` (the networks in eval mode on CPU plus the configuration
and data context they were trained with). :func:`load_model` is the keyword form the pipelines
use. The checkpoint format itself is :mod:`ddr_pipeline.model_store.checkpoints`.

Only weights are ever read (``torch.load(weights_only=True)``), never a pickle: a run name loads
``<run>/trained_model.pt`` of a finished training (a run still training, or one that left no
final model, is refused: name its checkpoint explicitly) and refuses a file of another training
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
    lock_path,
    training_in_progress,
)

logger = logging.getLogger(__name__)



def load_trained_model(
    source: str | os.PathLike[str], *, models_dir: str | Path = MODELS_DIR
) -> LoadedCheckpoint:
    """Load a trained model from one ``source``: a checkpoint file, an MLflow URI or a run name.

    ``runs:/...`` and ``models:/...`` are MLflow model URIs; an existing file (or any ``.pt``
    path) is a checkpoint; anything else names a finished training run whose final model
    under ``models_dir`` is loaded. Raises ``FileNotFoundError`` / :class:`CheckpointError` naming
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
    (``<run>/trained_model.pt``) once its training has finished.

    Raises ``FileNotFoundError`` naming the path searched, :class:`CheckpointError` when the
    run is still training (its lock is held) or left no final model (it did not finish): a
    checkpoint of such a run is loaded only when named explicitly.
    """
    if checkpoint:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        return path
    if not run_name:
        raise ValueError("give a checkpoint path, a training run name or an MLflow model URI")
    latest = latest_checkpoint(models_dir, run_name)
    explicit = f"its latest checkpoint ({latest})" if latest else "a checkpoint"
    if training_in_progress(models_dir, run_name):
        raise CheckpointError(
            f"run {run_name!r} is still training (its lock {lock_path(models_dir, run_name)} is "
            f"held): wait for it to finish, or name {explicit} explicitly (model.checkpoint)"
        )
    final = Path(models_dir) / run_name / FINAL_MODEL_FILE
    if final.is_file():
        return final
    if latest is None:
        raise FileNotFoundError(
            f"no final model of run {run_name!r} ({final}) and no checkpoint in "
            f"{Path(models_dir) / run_name / 'saved_models'} (train it first, or set the "
            "checkpoint path / MLflow model URI)"
        )
    raise CheckpointError(
        f"run {run_name!r} has no final model ({final}): its training did not finish (killed "
        f"or failed). Resume it, or name {explicit} explicitly (model.checkpoint)"
    )


#: Artifact folder of a training run holding its final checkpoint (training pipeline).
CHECKPOINT_ARTIFACT = "model_checkpoint"


def load_model(source: ModelSource) -> LoadedCheckpoint:
    """Load a trained model from a checkpoint path, a run's final model or an MLflow URI.

    Priority: ``checkpoint`` > ``mlflow_model_uri`` > final model of ``run_name`` (refused while
    the run trains or when it left none: :func:`resolve_checkpoint`), which must belong to the
    attempt recorded in the run folder. An MLflow URI
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
