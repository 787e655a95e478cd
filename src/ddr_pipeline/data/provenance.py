"""Which ``data_processing`` run wrote an output: fingerprints that bind its outputs together.

``data_processing`` saves ``gauges.parquet``, ``normalization_stats.json`` and
``model_inputs.zarr`` one after the other; a run that fails midway leaves some rewritten and
others from the previous run. Each output therefore records what it was built with, and every
consumer checks that the outputs it reads belong together (all-or-nothing by refusal):

* ``normalization_stats.json`` records the fingerprint of the gauge split
  (``computed_on.gauges_split_sha256``);
* ``model_inputs.zarr`` records the gauge split and the fingerprint of the statistics it was
  normalised with (attributes ``gauges_split_sha256`` and ``normalization_stats_sha256``).

Outputs written before the fingerprints existed record none and are not checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

#: Key of the gauge-split fingerprint (model-input attribute; ``computed_on`` of the statistics).
SPLIT_FINGERPRINT = "gauges_split_sha256"
#: Model-input attribute: fingerprint of the normalisation statistics the inputs were built with.
STATS_FINGERPRINT = "normalization_stats_sha256"


class MismatchedOutputsError(ValueError):
    """Outputs of different ``data_processing`` runs are read together."""


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


def check_same_split(recorded: str | None, gauges: pd.DataFrame, what: str) -> None:
    """Raise :class:`MismatchedOutputsError` when ``what`` was built with another gauge split."""
    if recorded is not None and recorded != split_fingerprint(gauges):
        raise MismatchedOutputsError(
            f"{what} and gauges.parquet come from different data_processing runs (another "
            "gauge split; a run failed midway?): re-run data_processing"
        )


def check_same_stats(recorded: str | None, stats: Mapping[str, Any]) -> None:
    """Raise :class:`MismatchedOutputsError` when the model inputs used other statistics."""
    if recorded is not None and recorded != stats_fingerprint(stats):
        raise MismatchedOutputsError(
            "model_inputs.zarr and normalization_stats.json come from different data_processing "
            "runs (the inputs were normalised with other statistics; a run failed midway?): "
            "re-run data_processing"
        )
