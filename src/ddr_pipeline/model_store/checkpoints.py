"""Checkpoints: atomic ``.pt`` files that resume training exactly and hold trained models.

File layout: ``<models_dir>/<run_name>/saved_models/ddr_<run_name>_epoch_<e>_mb_<i>.pt`` where
``e`` is the 1-based epoch and ``i`` the 0-based index of the last mini-batch trained.

A checkpoint is a dict of plain types and tensors (loadable with ``weights_only=True``):

==========================  ==============================================================
key                         content
==========================  ==============================================================
``format_version``          :data:`FORMAT_VERSION`
``world_size``              number of data-parallel ranks that trained it (optional; 1 if absent)
``epoch``, ``mini_batch``   position of the last trained mini-batch (1-based, 0-based)
``epoch_complete``          whether that mini-batch was the last one of its epoch
``global_step``             mini-batches trained so far (all epochs)
``model_state_dict``        ``RoutingModel.state_dict()`` (KAN and LSTM)
``optimizer_state_dict``    Adam state
``scheduler_state``         ``{"learning_rate": lr, "epoch": e}`` (the epoch LR table)
``rng_state``               python / numpy / torch / CUDA generator states of rank 0 and
                            ``ranks``: every rank's torch generator state (dropout); the gauge
                            order and windows come from the batch plan, not from a generator
``nonfinite``               ``{"consecutive": k, "total": m}`` NaN-guard counters
``config``                  resolved :class:`~ddr_pipeline.config.training.TrainingConfig` as JSON dict
``normalization_stats``     the ``normalization_stats.json`` content used for training
``data_provenance``         ``{"gauges_split_sha256", "normalization_stats_sha256"}`` of the
                            data it was trained on (optional; :mod:`ddr_pipeline.data.provenance`)
``attribute_names``         attribute order of the model inputs
``forcing_names``           forcing order of the model inputs
``history``                 list of per-mini-batch records so far (loss, lr, ...)
``attempt``                 ``{"id": ..., "mlflow_run_id": ...}`` of the training attempt that
                            wrote it (absent in checkpoints written before attempts existed)
==========================  ==============================================================

One run folder holds one training attempt: :func:`run_folder_lock` keeps a second training out
while one runs, :func:`claim_run_folder` refuses a folder holding another attempt's model files
unless that attempt is being resumed (or discards them when asked to replace the run), and :func:`check_attempt` refuses to load a file of another
attempt than the folder's (recorded in ``<run>/attempt.json``). The final model of a run is
``<run>/trained_model.pt`` (:data:`FINAL_MODEL_FILE`, written by the training pipeline).

Public API: :func:`checkpoint_path`, :func:`save_checkpoint` (atomic), :func:`read_checkpoint`,
:func:`load_checkpoint` (-> :class:`LoadedCheckpoint` with a ready :class:`RoutingModel`),
:func:`check_compatible`, :func:`latest_checkpoint`, :func:`run_folder_lock`,
:func:`claim_run_folder`, :func:`folder_attempt`, :func:`check_attempt`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ddr_pipeline.config.training import TrainingConfig, flatten_dict, load_training_config

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Training-configuration keys that older format-1 checkpoints hold and today's config lacks.
_REMOVED_CONFIG_KEYS = frozenset({"mode"})
REQUIRED_KEYS = (
    "format_version",
    "epoch",
    "mini_batch",
    "epoch_complete",
    "global_step",
    "model_state_dict",
    "optimizer_state_dict",
    "scheduler_state",
    "rng_state",
    "nonfinite",
    "config",
    "normalization_stats",
    "attribute_names",
    "forcing_names",
    "history",
)
RNG_KEYS = ("python", "numpy", "torch", "cuda", "ranks")
#: Config keys that may change when resuming (they do not change the trained model's maths;
#: threads and the memory budget may change last bits or the LSTM dropout stream of later steps).
RESUMABLE_KEYS = (
    "experiment.checkpoint",
    "experiment.epochs",
    "experiment.checkpoint_every",
    "experiment.validation_every",
    "experiment.device",
    "experiment.max_consecutive_nonfinite",
    "experiment.max_nonfinite_fraction",
    "experiment.threads",
    "experiment.memory_budget_gb",
    "run_name",
    "monitoring.models_dir",
    "monitoring.validation_period",
    "monitoring.validation_warmup_days",
    "monitoring.log_checkpoints",
    "monitoring.progress_bar",
    "monitoring.replace_run",
    "distributed.nproc_per_node",
    "distributed.nnodes",
    "distributed.master_addr",
    "distributed.master_port",
    "distributed.backend",
    "distributed.threads_per_rank",
    "distributed.timeout_s",
)
_NAME = re.compile(r"^ddr_(?P<run>.+)_epoch_(?P<epoch>\d+)_mb_(?P<mb>\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint is unreadable or does not match the configuration / data."""


#: Files of a run folder: its attempt id and the final model.
ATTEMPT_FILE = "attempt.json"
FINAL_MODEL_FILE = "trained_model.pt"


def lock_path(models_dir: str | Path, run_name: str) -> Path:
    """``<models_dir>/.<run_name>.training.lock``: beside the run folder, which may be replaced."""
    return Path(models_dir) / f".{run_name}.training.lock"


@contextmanager
def run_folder_lock(models_dir: str | Path, run_name: str) -> Iterator[None]:
    """Hold the run folder's lock (``flock``; released when the process dies) or fail at once."""
    folder = Path(models_dir) / run_name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(models_dir, run_name), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(
                f"run folder {folder} is in use by another training; wait for it or pick "
                "another run_name"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def training_in_progress(models_dir: str | Path, run_name: str) -> bool:
    """Whether a training holds ``run_name``'s lock right now (:func:`run_folder_lock`)."""
    path = lock_path(models_dir, run_name)
    if not path.is_file():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def folder_attempt(models_dir: str | Path, run_name: str) -> str | None:
    """The attempt id recorded in ``<models_dir>/<run_name>/attempt.json`` (None if absent)."""
    marker = Path(models_dir) / run_name / ATTEMPT_FILE
    if not marker.is_file():
        return None
    try:
        return str(json.loads(marker.read_text())["id"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{marker} cannot be read: {error}") from error


def _model_files(models_dir: str | Path, run_name: str) -> list[Path]:
    final = Path(models_dir) / run_name / FINAL_MODEL_FILE
    found = sorted(checkpoint_dir(models_dir, run_name).glob("ddr_*.pt"))
    return found + ([final] if final.is_file() else [])


def claim_run_folder(
    models_dir: str | Path, run_name: str, attempt_id: str, *, resuming: bool, replace: bool = False
) -> None:
    """Record ``attempt_id`` as the folder's attempt, refusing another attempt's folder.

    A folder holding checkpoints or a final model of another attempt is refused (with
    ``replace``: moved aside and deleted); one whose files predate attempt records is accepted
    only when resuming. A folder whose attempt left no model file (killed before its first
    checkpoint) is taken over. Call it holding :func:`run_folder_lock`.
    """
    folder = Path(models_dir) / run_name
    current = folder_attempt(models_dir, run_name)
    if current == attempt_id:
        return
    files = _model_files(models_dir, run_name)
    if files and (current is not None or not resuming):
        if replace and not resuming:
            _discard(folder)
        else:
            latest = latest_checkpoint(models_dir, run_name)
            raise CheckpointError(
                f"run folder {folder} holds another training attempt ({current or 'unrecorded'};"
                f" {len(files)} model files). Resume it with experiment.checkpoint="
                f"{latest or '<checkpoint>'}, pick another run_name, discard it with "
                "training.monitoring.replace_run=true, or delete the folder"
            )
    folder.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{ATTEMPT_FILE}.tmp-{os.getpid()}-", dir=folder)
    with os.fdopen(handle, "w") as stream:
        json.dump({"id": attempt_id}, stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, folder / ATTEMPT_FILE)


def _discard(folder: Path) -> None:
    """Move ``folder`` aside in one rename, then delete it (a kill leaves a dead writer's
    temporary, which the next ``kedro run`` removes)."""
    aside = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    folder.rename(aside)
    logger.warning("Replacing run folder %s: the earlier training attempt is deleted", folder)
    shutil.rmtree(aside)


def check_attempt(
    payload: Mapping[str, Any], models_dir: str | Path, run_name: str, path: str | Path
) -> None:
    """Raise :class:`CheckpointError` when ``path`` belongs to another attempt than its run's."""
    recorded = folder_attempt(models_dir, run_name)
    written = payload.get("attempt", {}).get("id")
    if recorded is not None and written != recorded:
        raise CheckpointError(
            f"{path} was written by training attempt {written or '(unrecorded)'}, but run folder "
            f"{Path(models_dir) / run_name} belongs to attempt {recorded}: not loading a model "
            "of another training"
        )


def checkpoint_dir(models_dir: str | Path, run_name: str) -> Path:
    """``<models_dir>/<run_name>/saved_models``."""
    return Path(models_dir) / run_name / "saved_models"


def checkpoint_path(models_dir: str | Path, run_name: str, epoch: int, mini_batch: int) -> Path:
    """Path of the checkpoint after ``mini_batch`` (0-based) of ``epoch`` (1-based)."""
    name = f"ddr_{run_name}_epoch_{epoch}_mb_{mini_batch}.pt"
    return checkpoint_dir(models_dir, run_name) / name


def save_checkpoint(payload: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint payload lacks keys {missing}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(dict(payload), stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, target)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if _disk_full(error):
            raise CheckpointError(
                f"no space left on the device writing checkpoint {target} (nothing was "
                f"replaced). Free space, then {_resume_hint(target.parent)}"
            ) from error
        raise
    logger.info("Saved checkpoint %s", target)
    return target


def _disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it: torch wraps write errors) is a full disk/quota."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _resume_hint(folder: Path, but: Path | None = None) -> str:
    """How to resume from the newest readable-looking checkpoint in ``folder`` (not ``but``)."""
    found = [
        ((int(m["epoch"]), int(m["mb"])), file)
        for file in (folder.glob("ddr_*_epoch_*_mb_*.pt") if folder.is_dir() else [])
        if (m := _NAME.match(file.name)) and file != but
    ]
    if not found:
        return "start the training again (no earlier checkpoint in this folder)"
    return f"resume with training.experiment.checkpoint={max(found)[1]}"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict (``weights_only=True``, on CPU) and check its keys."""
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"checkpoint {source} does not exist")
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, corrupt, or holding pickled code
        raise CheckpointError(
            f"checkpoint {source} cannot be read ({_short(error)}): the file is truncated or "
            "corrupt (a full disk, a cut copy) or not a weights-only checkpoint. To continue "
            f"training, {_resume_hint(_checkpoint_folder(source), but=source)}"
        ) from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {source} holds {type(payload).__name__}, not a dict")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {source} lacks keys {missing}")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {source} has format {payload['format_version']}, "
            f"this code reads {FORMAT_VERSION}"
        )
    return payload


def _checkpoint_folder(path: Path) -> Path:
    """Where the checkpoints beside ``path`` are (``saved_models/`` beside a final model)."""
    inner = path.parent / "saved_models"
    return inner if inner.is_dir() else path.parent


def _short(error: BaseException) -> str:
    """The first line of ``error``'s message, at most 200 characters."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]


def latest_checkpoint(models_dir: str | Path, run_name: str) -> Path | None:
    """The checkpoint of ``run_name`` with the highest (epoch, mini-batch), or ``None``."""
    folder = checkpoint_dir(models_dir, run_name)
    found = []
    for file in folder.glob("ddr_*_epoch_*_mb_*.pt") if folder.is_dir() else []:
        match = _NAME.match(file.name)
        if match and match["run"] == run_name:
            found.append(((int(match["epoch"]), int(match["mb"])), file))
    return max(found)[1] if found else None


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint ready for inference: the model plus everything needed to feed it."""

    model: torch.nn.Module  # ddr_pipeline.models.RoutingModel, eval mode, on CPU
    config: TrainingConfig
    normalization_stats: dict[str, Any]
    attribute_names: tuple[str, ...]
    forcing_names: tuple[str, ...]
    epoch: int
    mini_batch: int
    payload: dict[str, Any]


def _current_keys(config: Mapping[str, object]) -> dict[str, object]:
    """The saved training configuration without keys that format-1 checkpoints wrote before they
    were removed (``mode`` only named the run)."""
    return {key: value for key, value in config.items() if key not in _REMOVED_CONFIG_KEYS}


def model_fingerprint(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (first 16 hex digits) of a model's weights: names, dtypes, shapes and values.

    The one fingerprint of a model: MLflow tags, evaluation and routing outputs and BMI restart
    files all record it, so any consumer can tell which weights produced them.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Rebuild the trained :class:`RoutingModel` (eval mode, CPU) and its context from ``path``.

    Example::

        ckpt = load_checkpoint("data/06_models/run/saved_models/ddr_run_epoch_3_mb_4.pt")
        model, config = ckpt.model, ckpt.config
    """
    from ddr_pipeline.models import build_models

    payload = read_checkpoint(path)
    config = load_training_config(_current_keys(payload["config"]))
    model = build_models(config)
    model.load_state_dict(payload["model_state_dict"])
    model.eval()
    return LoadedCheckpoint(
        model=model,
        config=config,
        normalization_stats=dict(payload["normalization_stats"]),
        attribute_names=tuple(payload["attribute_names"]),
        forcing_names=tuple(payload["forcing_names"]),
        epoch=int(payload["epoch"]),
        mini_batch=int(payload["mini_batch"]),
        payload=payload,
    )


def _differences(saved: Mapping[str, Any], current: Mapping[str, Any], ignore: Sequence[str]):
    a, b = flatten_dict(saved), flatten_dict(current)
    keys = sorted((set(a) | set(b)) - set(ignore))
    return [
        f"{k}: checkpoint {a.get(k, '<absent>')!r} != now {b.get(k, '<absent>')!r}"
        for k in keys
        if not _same(a.get(k, "<absent>"), b.get(k, "<absent>"))
    ]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_compatible(
    payload: Mapping[str, Any],
    config: TrainingConfig,
    attribute_names: Sequence[str],
    forcing_names: Sequence[str],
    normalization_stats: Mapping[str, Any],
) -> None:
    """Raise :class:`CheckpointError` listing every difference between checkpoint and run."""
    problems = []
    if tuple(payload["attribute_names"]) != tuple(attribute_names):
        problems.append(
            f"attribute_names: checkpoint {list(payload['attribute_names'])} "
            f"!= data {list(attribute_names)}"
        )
    if tuple(payload["forcing_names"]) != tuple(forcing_names):
        problems.append(
            f"forcing_names: checkpoint {list(payload['forcing_names'])} "
            f"!= data {list(forcing_names)}"
        )
    current = config.model_dump(mode="json")
    problems += [f"config {d}" for d in _differences(payload["config"], current, RESUMABLE_KEYS)]
    stats_ignore = [k for k in flatten_dict(normalization_stats) if k.startswith("computed_on")]
    stats_ignore += [
        k for k in flatten_dict(payload["normalization_stats"]) if k.startswith("computed_on")
    ]
    problems += [
        f"normalization_stats {d}"
        for d in _differences(payload["normalization_stats"], normalization_stats, stats_ignore)
    ]
    if problems:
        raise CheckpointError(
            "checkpoint does not match this run:\n  "
            + "\n  ".join(problems[:20])
            + ("" if len(problems) <= 20 else f"\n  ... and {len(problems) - 20} more")
        )


#: Attribute of a model output (``model_test.zarr``, ``routed_discharge.zarr``): the weights'
#: fingerprint of the model that made it.
MODEL_FINGERPRINT_ATTR = "model_fingerprint"


def check_output_model(attrs: Mapping[str, Any], fingerprint: str, what: str) -> None:
    """Raise :class:`CheckpointError` when the output ``what`` was made from another model than
    the one with ``fingerprint`` (outputs without a recorded fingerprint are not checked)."""
    recorded = attrs.get(MODEL_FINGERPRINT_ATTR)
    if recorded is not None and recorded != fingerprint:
        made = f"run {attrs.get('training_run_name', '?')}, epoch {attrs.get('checkpoint_epoch', '?')}"
        raise CheckpointError(
            f"{what} was made from model {recorded} ({made}), not from model {fingerprint}"
        )
