"""Which trained model to load: the one schema of the pipelines, the BMI component and the loader."""

from __future__ import annotations

from pydantic import Field, field_validator

from ddr_pipeline.config.training import StrictModel

#: URI schemes of MLflow models.
MLFLOW_SCHEMES = ("runs:/", "models:/")
#: Default folder of the training runs' checkpoints (``<models_dir>/<run>/saved_models``).
MODELS_DIR = "data/06_models"


class ModelSource(StrictModel):
    """A checkpoint file, an MLflow model URI or a finished training run's final model, in that
    priority (:func:`ddr_pipeline.model_store.loader.load_model`)."""

    checkpoint: str | None = Field(None, description="Checkpoint file (.pt); wins over the rest.")
    mlflow_model_uri: str | None = Field(
        None, description="runs:/<run_id>/model, models:/<name>/<version> or models:/<name>@<alias>."
    )
    run_name: str | None = Field(
        None,
        description="Training run: its final model (a run still training or without a final "
        "model is refused: name its checkpoint); the pipelines fill it from their section's "
        "run_name.",
    )
    models_dir: str = Field(MODELS_DIR, description="Folder of the training runs.")

    @field_validator("mlflow_model_uri")
    @classmethod
    def _uri(cls, uri: str | None) -> str | None:
        if uri is not None and not uri.startswith(MLFLOW_SCHEMES):
            raise ValueError(f"must start with runs:/ or models:/, got {uri!r}")
        return uri

    @property
    def named(self) -> bool:
        """Whether any of checkpoint, MLflow URI or run name is given."""
        return bool(self.checkpoint or self.mlflow_model_uri or self.run_name)

    def for_run(self, run_name: str) -> ModelSource:
        """This source with ``run_name`` filled in where it names none."""
        return self if self.run_name else self.model_copy(update={"run_name": run_name})
