"""Training: the loop (:class:`Trainer`), validation, monitoring callbacks.

Checkpoints are :mod:`ddr_pipeline.model_store.checkpoints` (re-exported here); code that only runs a trained
model loads it through :mod:`ddr_pipeline.model_store.loader` and never imports this package.
"""

from ddr_pipeline.model_store.checkpoints import (
    CheckpointError,
    LoadedCheckpoint,
    check_compatible,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from ddr_pipeline.training.monitoring import (
    MlflowMonitor,
    NullMonitor,
    RecordingMonitor,
    TrainingMonitor,
)
from ddr_pipeline.training.trainer import (
    NonFiniteLossError,
    Trainer,
    TrainingResult,
    resolve_device,
)
from ddr_pipeline.training.validation import (
    ValidationSpec,
    batch_metrics,
    predict,
    validate,
)

__all__ = [
    "CheckpointError",
    "LoadedCheckpoint",
    "MlflowMonitor",
    "NonFiniteLossError",
    "NullMonitor",
    "RecordingMonitor",
    "Trainer",
    "TrainingMonitor",
    "TrainingResult",
    "ValidationSpec",
    "batch_metrics",
    "check_compatible",
    "checkpoint_path",
    "latest_checkpoint",
    "load_checkpoint",
    "predict",
    "read_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "validate",
]
