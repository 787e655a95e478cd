"""The optional lakes table of a geodataset folder (``lakes.parquet``, docs/data_formats.md).

A lake routes at one reach, its outlet reach: the table maps each lake to that reach and carries
NWM's level-pool parameters under the engine's names (:data:`schema.LAKE_PARAMS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ddr_pipeline.data import io, schema


def read_lakes(
    folder: io.PathLike, reach_ids: Sequence[int] | np.ndarray, *, nwm_defaults: bool = False
) -> pd.DataFrame | None:
    """The validated lakes of the geodataset in ``folder``; ``None`` when it has no lakes table.

    Raises what :func:`schema.validate_lakes` raises (``KeyError``/``ValueError`` naming the lake
    ids and columns); ``nwm_defaults`` is passed on (NWM's defaults for missing coefficients).
    """
    path = Path(folder) / schema.LAKES_FILE
    if not path.exists():
        return None
    return schema.validate_lakes(io.read_table(path), reach_ids, nwm_defaults=nwm_defaults)


def write_lakes(
    lakes: pd.DataFrame, folder: io.PathLike, reach_ids: Sequence[int] | np.ndarray
) -> None:
    """Validate ``lakes`` against ``reach_ids`` and write ``folder/lakes.parquet`` (atomic)."""
    io.write_table(schema.validate_lakes(lakes, reach_ids), Path(folder) / schema.LAKES_FILE)
