"""Reach geometry for maps: representative points and line parts (no plotting here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ddr_pipeline.data.schema import format_values


@dataclass(frozen=True)
class ReachLines:
    """Reach geometries as line parts: ``segments[i]`` (``(k, 2)`` x/y) belongs to reach ``owner[i]``.

    ``owner`` indexes the per-reach value arrays (a multi-part reach has several segments).
    """

    segments: Sequence[np.ndarray]
    owner: np.ndarray


def reach_points(reaches: pd.DataFrame, reach_ids: np.ndarray) -> np.ndarray:
    """``(N, 2)`` x/y of each reach's representative point (NaN where it has no geometry).

    Reaches are matched by id; ids missing from the table raise ``KeyError`` naming them.
    """
    if "geometry" not in reaches:
        raise KeyError(f"reaches table has no geometry column; columns: {list(reaches.columns)}")
    table = reaches.set_index(reaches["id"].astype(np.int64))
    missing = np.setdiff1d(reach_ids, table.index.to_numpy())
    if missing.size:
        raise KeyError(f"reaches table lacks reach ids {format_values(missing)}")
    points = gpd.GeoSeries(table.loc[reach_ids, "geometry"]).representative_point()
    return np.column_stack([points.x.to_numpy(), points.y.to_numpy()])


def reach_lines(reaches: pd.DataFrame, reach_ids: np.ndarray) -> ReachLines | None:
    """Line parts of the reaches ``reach_ids`` for maps; ``None`` unless every geometry is a line.

    ``owner`` of the result indexes ``reach_ids`` (multi-part reaches give several parts).
    """
    if "geometry" not in reaches:
        return None
    table = reaches.set_index(reaches["id"].astype(np.int64))
    geometry = gpd.GeoSeries(table.reindex(reach_ids)["geometry"]).reset_index(drop=True)
    if not geometry.geom_type.isin(["LineString", "MultiLineString"]).all():
        return None
    parts = geometry.explode(index_parts=False)
    coords, part = shapely.get_coordinates(parts.to_numpy(), return_index=True)
    if coords.size == 0:
        return None
    starts = np.flatnonzero(np.r_[True, part[1:] != part[:-1]])
    owner = parts.index.to_numpy()[part[starts]]
    return ReachLines(np.split(coords, starts[1:]), owner.astype(np.int64))
