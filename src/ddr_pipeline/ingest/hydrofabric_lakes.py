"""Level-pool lakes of a hydrofabric v2.2 GeoPackage -> the schema's ``lakes.parquet``.

The hydrofabric's lake layer (``lakes`` in v2.2, ``lake_attributes`` in older t-route fixtures)
carries NWM's LAKEPARM columns (``LkArea``, ``LkMxE``, ``WeirE``, ``WeirC``, ``WeirL``,
``OrificeE``, ``OrificeC``, ``OrificeA``, ``ifd``, often no ``Dam_Length``) keyed by the NHD
waterbody id (``hl_link``, or ``lake_id``). A flowpath lies in a lake when its waterbody column
(``waterbody`` of the flowpaths, or ``rl_NHDWaterbodyComID`` of the flowpath attributes, as t-route
reads them) names the lake. Each lake is placed on its one flowpath; a lake spanning several
flowpaths would have to be collapsed onto its outlet like an NWM waterbody
(:mod:`ddr_pipeline.ingest.nwm_lakes`), which the hydrofabric stores (one divide per reach) cannot
follow yet, so it is an error naming the lake and flowpaths.

Missing values stay missing (NaN): :func:`schema.validate_lakes` then names them, unless the
caller asks for NWM's defaults. A flowpath whose waterbody has no row in the lake layer is an error
unless ``missing="channel"`` (its flowpaths route as channels, logged). Lake rows on no flowpath of
the GeoPackage are dropped (logged).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyogrio

from ddr_pipeline.data import schema
from ddr_pipeline.ingest.hydrofabric import (
    ATTRIBUTE_LAYERS,
    HydrofabricError,
    find_layer,
    list_layers,
    parse_prefixed_ids,
)

logger = logging.getLogger(__name__)

LAKE_LAYERS = ("lakes", "lake_attributes", "lake-attributes")
LAKE_ID_COLUMNS = ("hl_link", "lake_id")
#: (layer kind, column) holding each flowpath's waterbody id, in the order they are looked for.
WATERBODY_COLUMNS = (("flowpaths", "waterbody"), ("attributes", "rl_NHDWaterbodyComID"))


def _read_table(path: str | Path, layer: str) -> pd.DataFrame:
    return pyogrio.read_dataframe(path, layer=layer, read_geometry=False, use_arrow=True)


def read_lake_layer(path: str | Path) -> pd.DataFrame | None:
    """The lake layer's rows (LAKEPARM names, ``lake_id`` int64), or None when it has none."""
    layer = find_layer(path, LAKE_LAYERS, "lake", required=False)
    if layer is None:
        return None
    table = _read_table(path, layer)
    if table.empty:
        logger.info("%s: lake layer %r has no rows: no lakes", path, layer)
        return None
    key = next((c for c in LAKE_ID_COLUMNS if c in table.columns), None)
    if key is None:
        raise HydrofabricError(
            f"{path}: lake layer {layer!r} has none of the lake id columns "
            f"{', '.join(LAKE_ID_COLUMNS)}; columns present: {', '.join(table.columns)}"
        )
    out = table.drop(columns=[c for c in LAKE_ID_COLUMNS if c in table.columns])
    out.insert(0, "lake_id", pd.to_numeric(table[key], errors="raise").astype("int64"))
    return out.drop_duplicates(subset="lake_id")  # v2.2 repeats a lake per hydrolocation


def flowpath_waterbodies(path: str | Path) -> pd.Series:
    """Waterbody id (int64; -1 = none) by flowpath number (``wb-N`` -> N)."""
    layers = list_layers(path)
    sources = {
        "flowpaths": "flowpaths",
        "attributes": find_layer(path, ATTRIBUTE_LAYERS, "flowpath attributes", False),
    }
    for kind, column in WATERBODY_COLUMNS:
        layer = sources[kind]
        if layer is None or layer not in layers:
            continue
        table = _read_table(path, layer)
        if column not in table.columns:
            continue
        first = pd.Series(table[column], dtype="string").str.split(",").str[0]  # t-route: first id
        ids = pd.to_numeric(first, errors="coerce").fillna(-1).astype("int64")
        numbers = parse_prefixed_ids(table["id"], ("wb",), f"{layer}.id")
        return pd.Series(ids.to_numpy(), index=pd.Index(numbers, name="id"), name="waterbody")
    return pd.Series(dtype="int64", name="waterbody")


def _as_lakeparm(layer: pd.DataFrame) -> pd.DataFrame:
    """The layer under LAKEPARM's names, absent parameters as NaN (validated later)."""
    out = layer.copy()
    for name in (*schema.NWM_LAKEPARM_NAMES.values(), "ifd"):
        if name not in out.columns:
            out[name] = np.nan
    return out


def _place(
    path: str | Path, table: pd.DataFrame, waterbody: pd.Series, reach_ids: np.ndarray, missing: str
) -> pd.DataFrame:
    """Add ``reach_id`` to the lake rows; errors for multi-flowpath and parameterless lakes."""
    members = waterbody[(waterbody > 0) & waterbody.index.isin(reach_ids)]
    counts = members.groupby(members.to_numpy()).size()
    several = counts[counts > 1].index.to_numpy()
    if several.size:
        spans = members[members.isin(several)].groupby(members[members.isin(several)]).groups
        raise HydrofabricError(
            f"{path}: lakes spanning several flowpaths cannot be placed on one reach yet: "
            f"{schema.format_values([f'{k}: {list(v)}' for k, v in spans.items()])}"
        )
    absent = np.setdiff1d(counts.index.to_numpy(), table["lake_id"].to_numpy())
    if absent.size and missing != "channel":
        raise HydrofabricError(
            f"{path}: flowpaths lie in waterbodies {schema.format_values(absent)} that the lake "
            "layer does not describe; pass missing='channel' to route them as channels"
        )
    if absent.size:
        logger.warning("%s: waterbodies %s route as channels", path, schema.format_values(absent))
    reach_of = pd.Series(members.index.to_numpy(), index=members.to_numpy())
    placed = table["lake_id"].isin(reach_of.index).to_numpy()
    if (~placed).any():
        logger.info(
            "%s: %d lakes on no flowpath of the network dropped", path, int((~placed).sum())
        )
    out = table[placed].copy()
    out.insert(1, "reach_id", reach_of.reindex(out["lake_id"]).to_numpy())
    return out


def hydrofabric_lakes(
    path: str | Path,
    reach_ids: np.ndarray,
    *,
    missing: Literal["error", "channel"] = "error",
    nwm_defaults: bool = False,
) -> pd.DataFrame | None:
    """The validated lakes table of the GeoPackage's network, or None when it has no lakes."""
    layer = read_lake_layer(path)
    if layer is None:
        return None
    lakeparm = _as_lakeparm(layer)
    rename = {nwm: ours for ours, nwm in schema.NWM_LAKEPARM_NAMES.items()}
    table = lakeparm[list(rename)].rename(columns=rename)
    table["initial_elevation"] = schema.initial_elevation_from_ifd(
        table["orifice_elevation"], table["max_elevation"], lakeparm["ifd"].to_numpy(np.float64)
    )
    table["source"] = f"hydrofabric {Path(path).name}"
    placed = _place(path, table, flowpath_waterbodies(path), np.asarray(reach_ids), missing)
    if placed.empty:
        return None
    return schema.validate_lakes(placed, reach_ids, nwm_defaults=nwm_defaults)
