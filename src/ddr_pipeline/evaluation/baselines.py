"""Baselines scored exactly like the trained model (same gauges, days and metrics).

* ``summed_lateral_inflow``: per gauge, the daily sum of the lateral inflow Q′ over the gauge's
  upstream closure (every reach draining to it, its own reaches included), no routing; the
  gauges' reaches are scaled by their ``flow_scale`` as in the routed model.
* untrained routing: the routing model with constant mid-range / configured parameters
  (:class:`ddr_pipeline.simulation.ConstantParameters`, routed by :func:`ddr_pipeline.simulation.rollout`).
* ``reference_at_gauges``: a dataset's reference routing product (NHM routed outflow for the
  Delaware demo), summed over each gauge's reaches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import sparse

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.simulation.problem import reach_flow_scale

logger = logging.getLogger(__name__)


def closure_matrix(
    network: RiverNetwork,
    gauge_reach_index: Sequence[np.ndarray],
    reach_weight: np.ndarray | None = None,
) -> sparse.csr_matrix:
    """Sparse ``(G, N)`` matrix: row g marks the upstream closure of gauge g's reaches.

    Entries are 1, or ``reach_weight[n]`` (``(N,)``, > 0) for reach ``n`` when given.
    """
    rows, cols = [], []
    for g, reaches in enumerate(gauge_reach_index):
        closure = network.upstream_closure(np.asarray(reaches, dtype=np.int64))
        cols.append(closure)
        rows.append(np.full(closure.size, g, dtype=np.int64))
    columns = np.concatenate(cols)
    data = (
        np.ones(columns.size, dtype=np.float64)
        if reach_weight is None
        else np.asarray(reach_weight, dtype=np.float64)[columns]
    )
    shape = (len(gauge_reach_index), network.n_reaches)
    return sparse.csr_matrix((data, (np.concatenate(rows), columns)), shape=shape)


def _sum_columns(matrix: sparse.csr_matrix, values: np.ndarray) -> np.ndarray:
    """``(T, G)`` sums of ``values`` ``(T, N)`` over each row of ``matrix`` ``(G, N)``.

    A day is NaN for a row when any of the columns it sums is not finite on that day (the
    matrix entries must be > 0 for this test).
    """
    q = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(q)
    total = matrix.dot(np.where(finite, q, 0.0).T).T
    pattern = matrix.copy()
    pattern.data = np.ones_like(pattern.data)
    n_missing = pattern.dot((~finite).astype(np.float64).T).T
    return np.where(n_missing > 0, np.nan, total)


def summed_lateral_inflow(
    lateral_inflow: np.ndarray,
    network: RiverNetwork,
    gauge_reach_index: Sequence[np.ndarray],
    flow_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Daily ``(T, G)`` sum of ``lateral_inflow`` ``(T, N)`` over each gauge's upstream closure.

    ``flow_scale`` (``(G,)``, e.g. :attr:`GaugeSet.flow_scale`) scales the inflow of every listed
    gauge's reaches as the routed model does (:func:`reach_flow_scale`). Days where any
    contributing reach is NaN are NaN.
    """
    weight = (
        None
        if flow_scale is None
        else reach_flow_scale(network.n_reaches, gauge_reach_index, flow_scale)
    )
    matrix = closure_matrix(network, gauge_reach_index, weight)
    return _sum_columns(matrix, lateral_inflow).astype(np.float32)


def reference_at_gauges(
    reference: xr.DataArray,
    gauge_reach_ids: Sequence[Sequence[int]],
    dates: pd.DatetimeIndex,
    reach_dim: str = "divide_id",
) -> np.ndarray:
    """Daily ``(T, G)`` reference discharge at gauges: the sum over each gauge's reach ids.

    ``reference`` is ``(reach_dim, time)`` and is aligned by id and date: days it lacks are NaN,
    and a gauge with a reach missing from the product is NaN (the missing reach ids are logged).
    """
    ids = np.asarray(reference[reach_dim].values, dtype=np.int64)
    lengths = np.array([len(reaches) for reaches in gauge_reach_ids], dtype=np.int64)
    wanted = np.fromiter(
        (int(r) for reaches in gauge_reach_ids for r in reaches), np.int64, int(lengths.sum())
    )
    gauge_of = np.repeat(np.arange(lengths.size), lengths)
    loc = pd.Index(ids).get_indexer(wanted)
    unknown = loc < 0
    if unknown.any():
        logger.warning(
            "reference product lacks reach ids %s: %d gauges get no reference baseline",
            np.unique(wanted[unknown])[:20].tolist(),
            np.unique(gauge_of[unknown]).size,
        )
    keep = ~np.isin(gauge_of, gauge_of[unknown])
    shape = (lengths.size, ids.size)
    matrix = sparse.csr_matrix((np.ones(int(keep.sum())), (gauge_of[keep], loc[keep])), shape=shape)
    values = reference.reindex(time=dates).transpose("time", reach_dim).values
    out = _sum_columns(matrix, values)
    out[:, np.unique(gauge_of[unknown])] = np.nan
    return out.astype(np.float32)


def load_reference(path: str | Path | None, variable: str = "outflow") -> xr.DataArray | None:
    """Open a reference routing product (zarr, variable ``variable``) or ``None`` if absent."""
    if path is None:
        return None
    store = Path(path)
    if not store.exists():
        logger.info("no reference product at %s: reference baseline skipped", store)
        return None
    with xr.open_zarr(store, consolidated=False) as ds:
        if variable not in ds:
            raise KeyError(f"reference product {store} has no variable {variable!r}: {list(ds)}")
        return ds[variable].load()
