"""DDR-compatible sparse adjacency stores (binsparse-like COO in zarr v3).

Layout (as written by DDR's ``engine``; see docs/datasets/*.md):

* root group: arrays ``indices_0`` (row = downstream index), ``indices_1`` (column = upstream
  index), ``values`` (uint8, 1), ``order`` (reach ids in topological order, upstream first) and
  per-reach channel arrays aligned with ``order`` (``length_m``, ``slope``, ``muskingum_x``,
  ``top_width``, ``side_slope`` where known); attrs ``format="COO"``, ``shape=[N, N]``,
  ``geodataset``, ``data_types``. Indices are positions in ``order`` so the matrix is strictly
  lower-triangular.
* one subgroup per gauge, named by its 8-digit STAID, with the same four arrays restricted to the
  gauge's upstream set (indices stay *network* indices, ``shape`` the network shape; ``order`` the
  subset ids) and attrs ``gage_idx`` (network index of the gauge reach), ``gage_catchment`` (its id;
  ``wb-N`` for the Lynker hydrofabric). A gauge with several reaches (hydrofabric nexus gauges)
  also gets ``gage_idxs``/``gage_reach_ids`` listing all of them; ``gage_idx`` is the first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from ddr_pipeline.data import io
from ddr_pipeline.network import RiverNetwork

logger = logging.getLogger(__name__)

FORMAT = "COO"
CHANNEL_ARRAYS = {
    "length_m": "length_m",
    "slope": "slope",
    "x": "muskingum_x",
    "top_width": "top_width",
    "side_slope": "side_slope",
}
LYNKER_NAMES = ("lynker", "lynker_hydrofabric", "hydrofabric_v2.2")


class AdjacencyError(ValueError):
    """An adjacency store that is malformed (names the array, attribute or gauge)."""


@dataclass(frozen=True)
class Adjacency:
    """A network read back from an adjacency store."""

    ids: np.ndarray  # reach ids in topological order (upstream first)
    to_ids: np.ndarray  # downstream id per reach (0 = outlet), aligned with ``ids``
    geodataset: str
    channel: pd.DataFrame  # ``id`` + channel columns stored in the root group


def _index_dtype(n: int) -> np.dtype:
    return np.dtype(np.int32) if n < np.iinfo(np.int32).max else np.dtype(np.int64)


def _id_dtype(ids: np.ndarray) -> np.dtype:
    fits = ids.size == 0 or (ids.min() >= 0 and ids.max() < np.iinfo(np.int32).max)
    return np.dtype(np.int32) if fits else np.dtype(np.int64)


def coo_edges(network: RiverNetwork) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position of each user index in topological order, rows, cols) of the network matrix.

    Row = downstream position, column = upstream position; sorted by (row, col).
    """
    n = network.n_reaches
    position = np.empty(n, np.int64)
    position[network.topological_order] = np.arange(n, dtype=np.int64)
    upstream = np.flatnonzero(network.downstream_index >= 0)
    rows = position[network.downstream_index[upstream]]
    cols = position[upstream]
    sort = np.lexsort((cols, rows))
    rows, cols = rows[sort], cols[sort]
    if (rows <= cols).any():
        raise AdjacencyError(
            "adjacency matrix is not strictly lower-triangular: "
            "the topological order is inconsistent"
        )
    return position, rows, cols


def _write_coo(
    group: zarr.Group, rows: np.ndarray, cols: np.ndarray, order: np.ndarray, n: int
) -> None:
    dtype = _index_dtype(n)
    group.create_array("indices_0", data=rows.astype(dtype))
    group.create_array("indices_1", data=cols.astype(dtype))
    group.create_array("values", data=np.ones(rows.size, np.uint8))
    group.create_array("order", data=order.astype(_id_dtype(order)))
    group.attrs.update(
        {
            "format": FORMAT,
            "shape": [n, n],
            "data_types": {"indices_0": str(dtype), "indices_1": str(dtype), "values": "uint8"},
        }
    )


def _gauge_catchment(reach_id: int, geodataset: str) -> str | int:
    return f"wb-{reach_id}" if geodataset in LYNKER_NAMES else int(reach_id)


def write_adjacency(
    path: str | Path, reaches: pd.DataFrame, gauges: pd.DataFrame | None, geodataset: str
) -> RiverNetwork:
    """Write the network (and per-gauge) adjacency store for schema ``reaches``/``gauges``.

    Args:
        path: target ``*.zarr`` directory (written atomically).
        reaches: schema reaches (``id``, ``to_id``; channel columns are stored when present).
        gauges: schema gauges (``STAID``, ``reach_ids``) or None for the network store only.
        geodataset: name stored in the ``geodataset`` attribute.

    Returns:
        The ``RiverNetwork`` built from ``reaches``.
    """
    network = RiverNetwork.from_ids(reaches["id"].to_numpy(), reaches["to_id"].to_numpy())
    position, rows, cols = coo_edges(network)
    order_ids = network.ids[network.topological_order]
    n = network.n_reaches
    with io.atomic_path(path) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        _write_coo(root, rows, cols, order_ids, n)
        root.attrs["geodataset"] = geodataset
        for column, name in CHANNEL_ARRAYS.items():
            if column in reaches and reaches[column].notna().any():
                values = reaches[column].to_numpy(np.float32)[network.topological_order]
                root.create_array(name, data=values)
        if gauges is not None:
            _write_gauges(root, network, position, gauges, geodataset)
    logger.info(
        "wrote adjacency %s: %d reaches, %d edges, %d gauges",
        path,
        n,
        rows.size,
        0 if gauges is None else len(gauges),
    )
    return network


def _write_gauges(
    root: zarr.Group,
    network: RiverNetwork,
    position: np.ndarray,
    gauges: pd.DataFrame,
    geodataset: str,
) -> None:
    n = network.n_reaches
    for staid, reach_ids in zip(gauges["STAID"].astype(str), gauges["reach_ids"], strict=True):
        origin = network.index_of(np.asarray(list(reach_ids), dtype=np.int64))
        members = network.upstream_closure(origin)
        group = root.create_group(staid)
        rows, cols, subset = _subset_edges(network, position, members)
        _write_coo(group, rows, cols, subset, n)
        group.attrs.update(
            {
                "gage_idx": int(position[origin[0]]),
                "gage_catchment": _gauge_catchment(int(network.ids[origin[0]]), geodataset),
            }
        )
        if origin.size > 1:
            group.attrs.update(
                {
                    "gage_idxs": [int(p) for p in position[origin]],
                    "gage_reach_ids": [int(i) for i in network.ids[origin]],
                }
            )


def _subset_edges(
    network: RiverNetwork, position: np.ndarray, members: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges inside ``members`` (network positions) and the member ids in topological order."""
    inside = np.zeros(network.n_reaches, np.bool_)
    inside[members] = True
    down = network.downstream_index[members]
    keep = (down >= 0) & inside[np.maximum(down, 0)]
    rows = position[down[keep]]
    cols = position[members[keep]]
    sort = np.lexsort((cols, rows))
    member_pos = position[members]
    ids = network.ids[members[np.argsort(member_pos, kind="stable")]]
    return rows[sort], cols[sort], ids


# ----------------------------------------------------------------------------- reading


def _check_coo(group: zarr.Group, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    missing = [a for a in ("indices_0", "indices_1", "values", "order") if a not in group]
    if missing:
        raise AdjacencyError(f"{where}: missing array(s) {', '.join(missing)}")
    if group.attrs.get("format") != FORMAT:
        raise AdjacencyError(
            f"{where}: attribute format={group.attrs.get('format')!r}, expected 'COO'"
        )
    shape = group.attrs.get("shape")
    if shape is None or len(shape) != 2 or shape[0] != shape[1]:
        raise AdjacencyError(f"{where}: attribute shape={shape!r} is not [N, N]")
    rows = np.asarray(group["indices_0"][...], dtype=np.int64)
    cols = np.asarray(group["indices_1"][...], dtype=np.int64)
    order = np.asarray(group["order"][...], dtype=np.int64)
    if rows.size != cols.size:
        raise AdjacencyError(f"{where}: indices_0 and indices_1 differ in length")
    if (rows <= cols).any():
        raise AdjacencyError(
            f"{where}: matrix is not strictly lower-triangular "
            f"({int((rows <= cols).sum())} entries on/above the diagonal)"
        )
    if rows.size and (rows.max() >= shape[0] or cols.min() < 0):
        raise AdjacencyError(f"{where}: indices outside shape {shape}")
    return rows, cols, order, int(shape[0])


def read_adjacency(path: str | Path) -> Adjacency:
    """Read the network store back into ids (topological order) and downstream ids."""
    root = zarr.open_group(str(path), mode="r")
    rows, cols, order, n = _check_coo(root, str(path))
    if order.size != n:
        raise AdjacencyError(f"{path}: order has {order.size} ids but shape is [{n}, {n}]")
    if np.bincount(cols, minlength=n).max(initial=0) > 1:
        raise AdjacencyError(f"{path}: a reach has several downstream reaches (not dendritic)")
    to_ids = np.zeros(n, np.int64)
    to_ids[cols] = order[rows]
    channel = pd.DataFrame({"id": order})
    for column, name in CHANNEL_ARRAYS.items():
        if name in root:
            channel[column] = np.asarray(root[name][...], dtype=np.float64)
    return Adjacency(
        ids=order, to_ids=to_ids, geodataset=str(root.attrs.get("geodataset", "")), channel=channel
    )


def read_gauge_subsets(
    path: str | Path, staids: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Per-gauge upstream sets: STAID -> network indices (sorted) of the gauge's reaches and all
    reaches upstream of them (the union of the subgroup's ``indices`` and ``gage_idx``)."""
    root = zarr.open_group(str(path), mode="r")
    names = sorted(name for name, _ in root.groups()) if staids is None else list(staids)
    out: dict[str, np.ndarray] = {}
    for staid in names:
        if staid not in root:
            raise AdjacencyError(f"{path}: no gauge subgroup {staid!r}")
        group = root[staid]
        rows, cols, _, _ = _check_coo(group, f"{path}/{staid}")
        origins = group.attrs.get("gage_idxs", [group.attrs["gage_idx"]])
        out[staid] = np.unique(np.concatenate([rows, cols, np.asarray(origins, np.int64)]))
    return out
