"""Which ``data_processing`` run wrote an output: fingerprints that bind its outputs together.

``data_processing`` saves ``gauges.parquet``, ``normalization_stats.json`` and
``model_inputs.zarr`` one after the other; a run that fails midway leaves some rewritten and
others from the previous run. Each output therefore records what it was built with, and every
consumer checks that the outputs it reads belong together (all-or-nothing by refusal):

* ``normalization_stats.json`` records the fingerprint of the gauge split
  (``computed_on.gauges_split_sha256``);
* ``model_inputs.zarr`` records the gauge split and the fingerprint of the statistics it was
  normalised with (attributes ``gauges_split_sha256`` and ``normalization_stats_sha256``).

* every checkpoint records both (``data_provenance``; checkpoints written before it fall back
  to the split its statistics recorded).

Every consumer (training, evaluation, routing, the BMI component, selection and ensembles)
checks what it reads through the one function :func:`check_provenance`. Outputs written before
the fingerprints existed record none and are not checked. :func:`processing_lock` keeps a second
``data_processing`` run of the same geodataset out while one writes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

#: Key of the gauge-split fingerprint (model-input attribute; ``computed_on`` of the statistics).
SPLIT_FINGERPRINT = "gauges_split_sha256"
#: Model-input attribute: fingerprint of the normalisation statistics the inputs were built with.
STATS_FINGERPRINT = "normalization_stats_sha256"


class MismatchedOutputsError(ValueError):
    """Outputs of different ``data_processing`` runs are read together."""


class ProcessingLockedError(RuntimeError):
    """Another ``data_processing`` run of the same geodataset holds its lock."""


def split_fingerprint(gauges: pd.DataFrame) -> str:
    """SHA-256 of the gauges' ``STAID:split`` lines, in table order."""
    lines = (
        f"{staid}:{split}" for staid, split in zip(gauges["STAID"], gauges["split"], strict=True)
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def stats_fingerprint(stats: Mapping[str, Any]) -> str:
    """SHA-256 of the statistics as canonical JSON (the same before and after a JSON round trip)."""
    return hashlib.sha256(json.dumps(stats, sort_keys=True).encode()).hexdigest()


def recorded_split(stats: Mapping[str, Any]) -> str | None:
    """The gauge-split fingerprint the statistics were computed with (None: not recorded)."""
    return stats.get("computed_on", {}).get(SPLIT_FINGERPRINT)


def provenance_record(stats: Mapping[str, Any]) -> dict[str, str | None]:
    """What a checkpoint records of the data it was trained on (``data_provenance``)."""
    return {SPLIT_FINGERPRINT: recorded_split(stats), STATS_FINGERPRINT: stats_fingerprint(stats)}


def checkpoint_split(payload: Mapping[str, Any]) -> str | None:
    """The gauge-split fingerprint a checkpoint was trained with (None: not recorded)."""
    recorded = payload.get("data_provenance") or {}
    return recorded.get(SPLIT_FINGERPRINT) or recorded_split(payload.get("normalization_stats", {}))


def _split_mismatches(splits: list[tuple[str, str]]) -> list[str]:
    """One line per pair of outputs recording different gauge splits."""
    problems = []
    for i, (first, first_split) in enumerate(splits):
        for second, second_split in splits[i + 1 :]:
            if first_split != second_split:
                problems.append(
                    f"{second} and {first} come from different data_processing runs (another "
                    "gauge split; a run failed midway, or a file was copied from another run?): "
                    "re-run data_processing"
                )
    return problems


def _recorded_splits(
    gauges: pd.DataFrame | None,
    model_inputs: Mapping[str, Any] | None,
    stats: Mapping[str, Any] | None,
) -> list[tuple[str, str]]:
    """``(file, split fingerprint)`` of each output given that records one."""
    splits = []
    if gauges is not None:
        splits.append(("gauges.parquet", split_fingerprint(gauges)))
    if model_inputs is not None and model_inputs.get(SPLIT_FINGERPRINT) is not None:
        splits.append(("model_inputs.zarr", str(model_inputs[SPLIT_FINGERPRINT])))
    if stats is not None and recorded_split(stats) is not None:
        splits.append(("normalization_stats.json", str(recorded_split(stats))))
    return splits


def _stats_mismatch(
    model_inputs: Mapping[str, Any] | None, stats: Mapping[str, Any] | None
) -> list[str]:
    """A line when the model inputs were normalised with other statistics than ``stats``."""
    recorded = None if model_inputs is None else model_inputs.get(STATS_FINGERPRINT)
    if stats is None or recorded is None or recorded == stats_fingerprint(stats):
        return []
    return [
        "model_inputs.zarr and normalization_stats.json come from different data_processing "
        "runs (the inputs were normalised with other statistics; a run failed midway?): "
        "re-run data_processing"
    ]


def check_provenance(
    *,
    gauges: pd.DataFrame | None = None,
    model_inputs: Mapping[str, Any] | None = None,
    stats: Mapping[str, Any] | None = None,
    checkpoint: Mapping[str, Any] | None = None,
    checkpoint_name: str = "the checkpoint",
) -> None:
    """Raise :class:`MismatchedOutputsError` unless everything given comes from one
    ``data_processing`` run (and the checkpoint was trained on its gauge split).

    ``gauges`` is ``gauges.parquet``, ``model_inputs`` the attributes of ``model_inputs.zarr``,
    ``stats`` ``normalization_stats.json`` and ``checkpoint`` a checkpoint payload; give what
    the consumer reads. Every mismatch is listed; fingerprints an output does not record are
    not checked.
    """
    splits = _recorded_splits(gauges, model_inputs, stats)
    problems = _split_mismatches(splits) + _stats_mismatch(model_inputs, stats)
    trained = checkpoint_split(checkpoint) if checkpoint is not None else None
    if trained is not None and splits and trained != splits[0][1]:
        problems.append(
            f"{checkpoint_name} was trained on another gauge split than {splits[0][0]} (data of "
            "another data_processing run): its held-out gauges would include training gauges. "
            "Use the data it was trained on, or retrain on this data"
        )
    if problems:
        raise MismatchedOutputsError("\n".join(problems))


def processing_lock_path(folder: str | Path) -> Path:
    """``<folder>/.data_processing.lock``: the lock file of a geodataset's model-input folder."""
    return Path(folder) / ".data_processing.lock"


@contextmanager
def processing_lock(folder: str | Path, geodataset: str) -> Iterator[None]:
    """Hold ``geodataset``'s ``data_processing`` lock (``flock``; released when the process
    dies) or fail at once: two runs writing one folder would leave a mix of their outputs."""
    path = processing_lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ProcessingLockedError(
                f"another data_processing run of geodataset {geodataset!r} is writing "
                f"{Path(folder)} (lock {path}); wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
