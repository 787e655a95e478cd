"""Training: the loop (:class:`Trainer`), atomic resumable checkpoints, monitoring callbacks.

Public API for other parts of the project (evaluation, routing pipelines)::

    from ddr_pipeline.training import load_checkpoint
    ckpt = load_checkpoint(path)   # -> LoadedCheckpoint(model, config, normalization_stats, ...)
"""

from ddr_pipeline.training.checkpoints import (
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
