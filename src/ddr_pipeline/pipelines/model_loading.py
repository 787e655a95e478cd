"""The load-model pipeline shared by the ``evaluation`` and ``routing`` pipelines.

Three nodes under a prefix (``evaluation`` or ``routing``): check that the parameters name the
geodataset the pipeline was built for, load the trained model named by ``params:<prefix>.model``
through :mod:`ddr_pipeline.model_store.loader`, and check it against the model-ready data. Outputs:
``<prefix>.geodataset``, ``<prefix>.checkpoint`` (the trained model) and ``<prefix>.inputs``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import xarray as xr
from kedro.pipeline import Node, Pipeline

from ddr_pipeline.config.model_source import ModelSource
from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.data.provenance import check_provenance
from ddr_pipeline.model_store.checkpoints import (
    MODEL_FINGERPRINT_ATTR,
    CheckpointError,
    LoadedCheckpoint,
    check_compatible,
)
from ddr_pipeline.model_store.loader import load_model
from ddr_pipeline.pipelines.geodataset import geodataset_check
from ddr_pipeline.project import tracking


def load_trained_model(model_params: dict[str, Any], run_name: str) -> LoadedCheckpoint:
    """Load the model named by ``<prefix>.model`` (checkpoint / MLflow URI / finished run)."""
    return load_model(ModelSource.model_validate(model_params).for_run(run_name))


def check_model_against_data(  # noqa: PLR0917 (Kedro passes node inputs positionally)
    ckpt: LoadedCheckpoint,
    model_inputs: xr.Dataset,
    normalization_stats: dict[str, Any],
    geodataset: str,
    training_params: dict[str, Any] | None = None,
    check_training_parameters: bool = False,
    gauges: pd.DataFrame | None = None,
) -> ModelInputs:
    """Fail with every difference between the trained model and the data; return the inputs.

    Checked: that the inputs, statistics and ``gauges`` come from one ``data_processing`` run
    and the model was trained on its gauge split
    (:func:`ddr_pipeline.data.provenance.check_provenance`), geodataset, attribute / forcing
    names and order, normalisation statistics and (with ``check_training_parameters``) the
    model-defining keys of the current ``training`` parameters (resume-only keys such as epochs
    are ignored).
    """
    check_provenance(
        gauges=gauges,
        model_inputs=model_inputs.attrs,
        stats=normalization_stats,
        checkpoint=None if ckpt is None else ckpt.payload,
        checkpoint_name="the trained model",
    )
    inputs = ModelInputs.from_dataset(model_inputs)
    if ckpt.config.geodataset != geodataset:
        raise CheckpointError(
            f"checkpoint was trained on geodataset {ckpt.config.geodataset!r}, "
            f"the data is {geodataset!r}"
        )
    use_current = check_training_parameters and training_params
    config = load_training_config(training_params) if use_current else ckpt.config
    check_compatible(
        ckpt.payload, config, inputs.attribute_names, inputs.forcing_names, normalization_stats
    )
    return inputs


def tag_mlflow_run(ds: xr.Dataset) -> None:
    """Tag the active MLflow run (if any) with the training run name, checkpoint and model."""
    import mlflow

    if mlflow.active_run() is None:
        return
    mlflow.set_tags(
        {
            tracking.MODEL_USED_TAG: ds.attrs.get(MODEL_FINGERPRINT_ATTR, "unrecorded"),
            "training_run_name": ds.attrs["training_run_name"],
            "checkpoint": f"epoch {ds.attrs['checkpoint_epoch']} mb {ds.attrs['checkpoint_mini_batch']}",
            "period": " .. ".join(ds.attrs["period"]),
        }
    )


def create_pipeline(
    prefix: str, geodataset: str, *, check_training: bool = False, with_gauges: bool = False
) -> Pipeline:
    """The load-model nodes of pipeline ``prefix`` on ``geodataset``'s model-ready data.

    ``check_training`` adds ``params:training`` and ``params:<prefix>.check_training_parameters``
    to the model check; ``with_gauges`` the gauges table (its split is checked too).
    """
    check_inputs = {
        "ckpt": f"{prefix}.checkpoint",
        "model_inputs": f"{geodataset}.model_inputs",
        "normalization_stats": f"{geodataset}.normalization_stats",
        "geodataset": f"{prefix}.geodataset",
    }
    if check_training:
        check_inputs["training_params"] = "params:training"
        check_inputs["check_training_parameters"] = f"params:{prefix}.check_training_parameters"
    if with_gauges:
        check_inputs["gauges"] = f"{geodataset}.model_gauges"
    return Pipeline(
        [
            Node(
                geodataset_check(geodataset),
                f"params:{prefix}.geodataset",
                f"{prefix}.geodataset",
                name=f"check_{prefix}_geodataset",
            ),
            Node(
                load_trained_model,
                [f"params:{prefix}.model", f"params:{prefix}.run_name"],
                f"{prefix}.checkpoint",
                name=f"load_{prefix}_model",
            ),
            Node(
                check_model_against_data,
                check_inputs,
                f"{prefix}.inputs",
                name=f"check_{prefix}_model_against_data",
            ),
        ],
        tags=[prefix],
    )
