"""The MLflow model a training run logs: its weights-only checkpoint plus code, no pickle.

The training pipeline logs the final checkpoint (state dict, configuration, normalisation
statistics, input names; :mod:`ddr_pipeline.model_store.checkpoints`) as the artifact ``checkpoint`` of an
MLflow pyfunc "model from code" whose code is this file (:func:`log_trained_model`). Nothing
is pickled: the network is rebuilt from the configuration and the weights are read with
``torch.load(weights_only=True)``, so a crafted model file cannot run code when the project
loads it (:func:`ddr_pipeline.model_store.loader.load_model` reads the checkpoint artifact directly and
never calls ``mlflow.pyfunc.load_model``).

``mlflow.pyfunc.load_model("runs:/<id>/model").predict([request])`` routes a model-ready store:
a :class:`RoutingRequest` (or dict) with ``model_inputs`` (path of a ``model_inputs.zarr``),
``start`` and ``end`` (ISO dates) and optionally ``warmup_days`` and ``chunk_days`` (default
365); it returns the daily mean discharge per reach (``reach_id``, ``time``, ``discharge`` m³/s).
"""

# No ``from __future__ import annotations``: MLflow reads predict's type hints at run time.
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from pydantic import BaseModel

#: Key of the checkpoint among the logged model's artifacts (its file: ``<model>/artifacts/``).
CHECKPOINT_KEY = "checkpoint"


class RoutingRequest(BaseModel):
    """One prediction request: a model-ready store, a period and the routing's spin-up."""

    model_inputs: str
    start: str
    end: str
    warmup_days: int = 365
    chunk_days: int = 365


class TrainedRoutingModel(mlflow.pyfunc.PythonModel):
    """A trained routing model rebuilt from its weights-only checkpoint."""

    def load_context(self, context: Any) -> None:
        """Rebuild the networks from the checkpoint artifact (weights only)."""
        from ddr_pipeline.model_store.checkpoints import load_checkpoint

        self.trained = load_checkpoint(context.artifacts[CHECKPOINT_KEY])

    def predict(self, model_input: list[RoutingRequest], params=None) -> pd.DataFrame:  # noqa: ANN001
        """Daily mean discharge per reach of the store and period of the (first) request."""
        from ddr_pipeline.data.containers import ModelInputs
        from ddr_pipeline.data.io import read_zarr
        from ddr_pipeline.inference.gauges import PredictionSettings
        from ddr_pipeline.inference.reaches import route_reaches

        request = model_input[0]
        settings = PredictionSettings(request.warmup_days, request.chunk_days)
        inputs = ModelInputs.from_dataset(read_zarr(request.model_inputs))
        period = (request.start, request.end)
        run_name = str(self.trained.config.run_name)
        routed = route_reaches(self.trained, inputs, period, settings, None, run_name)
        return routed["discharge"].to_dataframe().reset_index()


def checkpoint_in_model(model_dir: str | Path) -> Path | None:
    """The checkpoint file of a downloaded model folder (from its ``MLmodel`` YAML), or None."""
    from mlflow.models import Model

    if not (Path(model_dir) / "MLmodel").is_file():
        return None
    flavor = Model.load(str(model_dir)).flavors.get("python_function", {})
    entry = (flavor.get("artifacts") or {}).get(CHECKPOINT_KEY)
    if not isinstance(entry, dict) or "path" not in entry:
        return None
    path = (Path(model_dir) / entry["path"]).resolve()
    return path if path.is_relative_to(Path(model_dir).resolve()) and path.is_file() else None


def log_trained_model(checkpoint: str | Path, name: str, pip_requirements: list[str]) -> Any:
    """Log ``checkpoint`` as the weights-only MLflow model ``name`` of the active run."""
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__)),
        artifacts={CHECKPOINT_KEY: str(checkpoint)},
        pip_requirements=pip_requirements,
    )


mlflow.models.set_model(TrainedRoutingModel())
