"""The model store: a checkpoint path, a training run or an MLflow model URI -> trained model.

Everything that runs a trained model (the evaluation and routing pipelines through
:mod:`ddr_pipeline.pipelines.model_loading`, notebooks, couplers) loads it here::

    from ddr_pipeline.model_store import load_trained_model

    model = load_trained_model("data/06_models/run/trained_model.pt")  # a checkpoint file
    model = load_trained_model("runs:/<run_id>/model")                 # an MLflow model URI
    model = load_trained_model("ddr-drb-training")                     # a run's latest checkpoint
    model.model, model.config, model.normalization_stats, model.attribute_names

The result is a :data:`TrainedModel` (the networks in eval mode on CPU plus the configuration
and data context they were trained with). :func:`load_model` is the keyword form the pipelines
use. The checkpoint format itself is :mod:`ddr_pipeline.checkpoints`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch

from ddr_pipeline.checkpoints import (
    CheckpointError,
    LoadedCheckpoint,
    latest_checkpoint,
    load_checkpoint,
)

logger = logging.getLogger(__name__)

#: A trained model ready to run: networks (eval mode, CPU), configuration, data context.
TrainedModel = LoadedCheckpoint
#: URI schemes read from MLflow by :func:`load_trained_model`.
MLFLOW_SCHEMES = ("runs:/", "models:/")
#: Default folder of the training runs' checkpoints (``<models_dir>/<run>/saved_models``).
MODELS_DIR = "data/06_models"


def load_trained_model(
    source: str | os.PathLike[str], *, models_dir: str | Path = MODELS_DIR
) -> TrainedModel:
    """Load a trained model from one ``source``: a checkpoint file, an MLflow URI or a run name.

    ``runs:/...`` and ``models:/...`` are MLflow model URIs; an existing file (or any ``.pt``
    path) is a checkpoint; anything else names a training run whose latest checkpoint under
    ``models_dir`` is loaded. Raises ``FileNotFoundError`` / :class:`CheckpointError` naming
    what was searched.
    """
    text = str(source)
    if text.startswith(MLFLOW_SCHEMES):
        return load_model(mlflow_model_uri=text, models_dir=models_dir)
    if Path(text).suffix == ".pt" or Path(text).is_file():
        return load_model(checkpoint=text)
    return load_model(run_name=text, models_dir=models_dir)


def resolve_checkpoint(
    checkpoint: str | None, run_name: str | None, models_dir: str | Path
) -> Path:
    """The checkpoint file to load: ``checkpoint`` if given, else the latest one of ``run_name``.

    Raises ``FileNotFoundError`` naming the path or run folder searched.
    """
    if checkpoint:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        return path
    if not run_name:
        raise ValueError("give a checkpoint path, a training run name or an MLflow model URI")
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


def load_model(
    checkpoint: str | None = None,
    run_name: str | None = None,
    mlflow_model_uri: str | None = None,
    models_dir: str | Path = MODELS_DIR,
) -> LoadedCheckpoint:
    """Load a trained model from a checkpoint path, a run's latest checkpoint or an MLflow URI.

    Priority: ``checkpoint`` > ``mlflow_model_uri`` > latest checkpoint of ``run_name``. For an
    MLflow URI (``runs:/<id>/model``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``)
    the weights come from the MLflow PyTorch model and the configuration / normalisation
    statistics from the checkpoint its training run logged as ``model_checkpoint/`` (read from
    the tracking store set by ``MLFLOW_TRACKING_URI`` / ``mlflow.set_tracking_uri``). Only when
    that run has no such artifact is the latest local checkpoint of ``run_name`` used instead
    (with a warning); its architecture (state-dict keys) must match. Raises
    :class:`CheckpointError` naming the run and the folder searched when neither exists.
    """
    if checkpoint or not mlflow_model_uri:
        path = resolve_checkpoint(checkpoint, run_name, models_dir)
        logger.info("loading checkpoint %s", path)
        return load_checkpoint(path)
    import mlflow.pytorch

    base, origin = _mlflow_context(mlflow_model_uri, run_name, models_dir)
    model = mlflow.pytorch.load_model(mlflow_model_uri, map_location="cpu")
    state = _matching_state(model.state_dict(), base, mlflow_model_uri, origin)
    logger.info("loaded weights from MLflow model %s (context: %s)", mlflow_model_uri, origin)
    return dataclasses.replace(base, payload={**base.payload, "model_state_dict": state})


def _matching_state(
    state: Mapping[str, torch.Tensor], base: LoadedCheckpoint, uri: str, origin: str
) -> dict[str, torch.Tensor]:
    """Load ``state`` into ``base.model`` (eval mode); fail naming both sources on a mismatch."""
    ours, theirs = set(base.model.state_dict()), set(state)
    if ours != theirs:
        raise CheckpointError(
            f"MLflow model {uri} does not match the architecture of {origin}: keys only in "
            f"MLflow {sorted(theirs - ours)[:10]}, only in checkpoint {sorted(ours - theirs)[:10]}"
        )
    try:
        base.model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"MLflow model {uri} does not fit {origin}: {error}") from error
    base.model.eval()
    return dict(base.model.state_dict())


def _mlflow_context(
    uri: str, run_name: str | None, models_dir: str | Path
) -> tuple[LoadedCheckpoint, str]:
    """The checkpoint giving an MLflow model's configuration and statistics, and its origin."""
    from mlflow.models import get_model_info

    run_id = get_model_info(uri).run_id
    if run_id:
        ckpt = _run_checkpoint(run_id)
        if ckpt is not None:
            return ckpt, f"artifact {CHECKPOINT_ARTIFACT}/ of MLflow run {run_id}"
    local = latest_checkpoint(models_dir, run_name) if run_name else None
    if local is not None:
        logger.warning(
            "MLflow model %s: its run %s has no %s/ artifact; using the configuration and "
            "normalisation statistics of the local checkpoint %s",
            uri,
            run_id,
            CHECKPOINT_ARTIFACT,
            local,
        )
        return load_checkpoint(local), f"local checkpoint {local}"
    folder = Path(models_dir) / (run_name or "<run_name>") / "saved_models"
    raise CheckpointError(
        f"MLflow model {uri} holds only the network weights; its configuration and "
        f"normalisation statistics come from the {CHECKPOINT_ARTIFACT}/ artifact of its training "
        f"run ({run_id or 'no source run recorded'}), which has none, or from a local checkpoint "
        f"of run {run_name!r} in {folder}, which does not exist"
    )


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
