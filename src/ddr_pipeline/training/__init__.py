"""Training: the loop (:class:`Trainer`), validation, monitoring callbacks.

Checkpoints are :mod:`ddr_pipeline.model_store.checkpoints`; code that only runs a trained
model loads it through :mod:`ddr_pipeline.model_store.loader` and never imports this package.
"""

from ddr_pipeline.training.monitoring import (
    MlflowMonitor,
    NullMonitor,
    RecordingMonitor,
    TrainingMonitor,
)
from ddr_pipeline.training.trainer import (
    NonFiniteLossError,
    Trainer,
    TrainingFailedError,
    TrainingResult,
    resolve_device,
)
from ddr_pipeline.training.validation import (
    ValidationSpec,
    predict,
    validate,
)

__all__ = [
    "MlflowMonitor",
    "NonFiniteLossError",
    "NullMonitor",
    "RecordingMonitor",
    "Trainer",
    "TrainingFailedError",
    "TrainingMonitor",
    "TrainingResult",
    "ValidationSpec",
    "predict",
    "resolve_device",
    "validate",
]
