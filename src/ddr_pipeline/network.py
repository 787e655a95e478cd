"""River network topology: ids/to_ids -> topological order, upstream sets and sub-networks.

A :class:`RiverNetwork` is built once from reach ids and downstream ids (any order) and caches the
arrays the routing kernels need. Everything is vectorised (numpy + numba); no Python loop runs over
reaches, so construction scales to millions of reaches.

Conventions: "user index" = position in the ``ids`` given to :meth:`RiverNetwork.from_ids`; every
per-reach array in or out of the public API follows that order. The topological order is a
depth-first post-order from the outlets, so every reach comes before the reach it drains into and the
upstream closure of a single reach is one contiguous slice of the order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

_MAX_NAMED = 20  # ids listed in an error message


def _name_ids(ids: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in ids[:_MAX_NAMED].tolist())
    more = f" (+{ids.size - _MAX_NAMED} more)" if ids.size > _MAX_NAMED else ""
    return shown + more


def _as_int_ids(values: object, what: str) -> np.ndarray:
    """Reach ids as int64; raises on missing or non-integer values."""
    series = pd.Series(np.asarray(values).ravel() if not isinstance(values, pd.Series) else values)
    if series.isna().any():
        bad = np.flatnonzero(series.isna().to_numpy())
        raise ValueError(f"{what} has missing values at positions {_name_ids(bad)}")
    try:
        arr = series.to_numpy(dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be integer reach ids: {exc}") from exc
    if not np.array_equal(arr, series.to_numpy()):
        raise ValueError(f"{what} must be integer-valued reach ids")
    return arr


def _downstream_ids(to_ids: object, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(to_id as int64, valid mask); None/NaN/non-integer entries are invalid (outlets)."""
    if isinstance(to_ids, pd.Series | pd.Index):
        series = pd.Series(to_ids)
        if series.dtype.kind in "iuf":
            arr = series.to_numpy()
        else:
            valid = ~series.isna().to_numpy()
            filled = series.where(valid, 0)
            arr = (
                filled.to_numpy(dtype=np.int64)
                if pd.api.types.is_integer_dtype(series.dtype)
                else pd.to_numeric(filled.astype(object), errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
            )
    else:
        arr = np.asarray(to_ids)
        if arr.dtype.kind not in "iuf":
            series = pd.Series(arr.ravel(), dtype=object)
            arr = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    arr = arr.ravel()
    if arr.size != n:
        raise ValueError(f"to_ids has {arr.size} entries but ids has {n}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64), np.ones(n, np.bool_)
    valid = np.isfinite(arr) & (arr == np.round(arr))
    return np.where(valid, arr, 0).astype(np.int64), valid


@numba.njit(cache=True)
def _cycle_members(downstream: np.ndarray) -> np.ndarray:
    """Reaches left after Kahn elimination = reaches on cycles (each reach has one downstream)."""
    n = downstream.size
    indeg = np.zeros(n, np.int64)
    for i in range(n):
        if downstream[i] >= 0:
            indeg[downstream[i]] += 1
    stack = np.empty(n, np.int64)
    top = 0
    for i in range(n):
        if indeg[i] == 0:
            stack[top] = i
            top += 1
    removed = np.zeros(n, np.bool_)
    while top > 0:
        top -= 1
        v = stack[top]
        removed[v] = True
        d = downstream[v]
        if d >= 0:
            indeg[d] -= 1
            if indeg[d] == 0:
                stack[top] = d
                top += 1
    return np.flatnonzero(~removed)


@numba.njit(cache=True)
def _postorder(
    downstream: np.ndarray, up_ptr: np.ndarray, up_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Depth-first post-order from the outlets and the start of each reach's subtree in it."""
    n = downstream.size
    order = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    ptr = up_ptr[:-1].copy()
    stack = np.empty(n, np.int64)
    pos = 0
    for root in range(n):
        if downstream[root] >= 0:
            continue
        top = 0
        stack[0] = root
        first[root] = pos
        top = 1
        while top > 0:
            v = stack[top - 1]
            if ptr[v] < up_ptr[v + 1]:
                c = up_idx[ptr[v]]
                ptr[v] += 1
                first[c] = pos
                stack[top] = c
                top += 1
            else:
                order[pos] = v
                pos += 1
                top -= 1
    return order, first


@numba.njit(cache=True)
def _levels(order: np.ndarray, downstream: np.ndarray) -> np.ndarray:
    """Longest path (in links) from a headwater: 0 for headwaters."""
    level = np.zeros(order.size, np.int64)
    for p in range(order.size):
        i = order[p]
        d = downstream[i]
        if d >= 0 and level[d] < level[i] + 1:
            level[d] = level[i] + 1
    return level


@numba.njit(cache=True)
def _mark_ranges(n: int, starts: np.ndarray, stops: np.ndarray, order: np.ndarray) -> np.ndarray:
    mark = np.zeros(n, np.bool_)
    for k in range(starts.size):
        for p in range(starts[k], stops[k]):
            mark[order[p]] = True
    return mark


@dataclass(frozen=True, eq=False)
class RiverNetwork:
    """A dendritic river network. Build it with :meth:`from_ids`.

    Attributes:
        ids: reach ids (int64), in the user order.
        downstream_index: user index of the downstream reach, -1 for outlets.
        topological_order: user indices, every reach before the reach it drains into.
        up_ptr, up_idx: CSR of upstream reaches (user indices) per reach (user index).
    """

    ids: np.ndarray
    downstream_index: np.ndarray
    topological_order: np.ndarray
    up_ptr: np.ndarray
    up_idx: np.ndarray
    _subtree_first: np.ndarray = field(repr=False)
    _position: np.ndarray = field(repr=False)
    _sorted_ids: np.ndarray = field(repr=False)
    _sorted_pos: np.ndarray = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_ids(cls, ids: Sequence[int] | np.ndarray, to_ids: Iterable[object]) -> RiverNetwork:
        """Build a network from reach ids and downstream ids (same length, any order).

        A downstream id that is missing, None/NaN, 0 (when 0 is not a reach id) or not in ``ids``
        makes the reach an outlet. Duplicate ids, self-loops and cycles raise ``ValueError`` naming
        the ids involved.
        """
        id_arr = _as_int_ids(ids, "ids")
        n = id_arr.size
        sort = np.argsort(id_arr, kind="stable")
        sorted_ids = id_arr[sort]
        dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if dup.size:
            raise ValueError(f"duplicate reach ids: {_name_ids(np.unique(dup))}")
        to_arr, valid = _downstream_ids(to_ids, n)
        downstream = _lookup(sorted_ids, sort, to_arr, valid)
        selfloop = np.flatnonzero(downstream == np.arange(n))
        if selfloop.size:
            raise ValueError(
                f"reaches drain into themselves (self-loops): {_name_ids(id_arr[selfloop])}"
            )
        up_ptr, up_idx = _upstream_csr(downstream)
        cyc = _cycle_members(downstream)
        if cyc.size:
            raise ValueError(f"the network has cycles through reach ids: {_name_ids(id_arr[cyc])}")
        order, first = _postorder(downstream, up_ptr, up_idx)
        position = np.empty(n, np.int64)
        position[order] = np.arange(n, dtype=np.int64)
        logger.debug("RiverNetwork: %d reaches, %d outlets", n, int((downstream < 0).sum()))
        return cls(
            ids=id_arr,
            downstream_index=downstream,
            topological_order=order,
            up_ptr=up_ptr,
            up_idx=up_idx,
            _subtree_first=first,
            _position=position,
            _sorted_ids=sorted_ids,
            _sorted_pos=sort,
        )

    # ------------------------------------------------------------------ basic properties
    @property
    def n_reaches(self) -> int:
        """Number of reaches N."""
        return int(self.ids.size)

    def __len__(self) -> int:
        return self.n_reaches

    @property
    def is_outlet(self) -> np.ndarray:
        """Boolean mask (user order): the reach drains out of the network."""
        return self.downstream_index < 0

    @property
    def is_headwater(self) -> np.ndarray:
        """Boolean mask (user order): nothing drains into the reach."""
        return np.diff(self.up_ptr) == 0

    @property
    def levels(self) -> np.ndarray:
        """Topological level per reach (0 = headwater; a reach is above all its upstream reaches)."""
        if "levels" not in self._cache:
            self._cache["levels"] = _levels(self.topological_order, self.downstream_index)
        return self._cache["levels"]

    @property
    def upstream_count(self) -> np.ndarray:
        """Number of reaches in each reach's upstream closure, itself included."""
        return self._position - self._subtree_first + 1

    def index_of(self, ids: Iterable[int] | int) -> np.ndarray:
        """User indices of reach ids; raises ``KeyError`` naming unknown ids."""
        query = np.atleast_1d(_as_int_ids(np.atleast_1d(np.asarray(ids)), "ids"))
        loc = np.searchsorted(self._sorted_ids, query)
        loc_c = np.minimum(loc, max(self.n_reaches - 1, 0))
        found = (loc < self.n_reaches) & (self._sorted_ids[loc_c] == query)
        if not found.all():
            raise KeyError(f"unknown reach ids: {_name_ids(query[~found])}")
        return self._sorted_pos[loc_c]

    # ------------------------------------------------------------------ upstream sets
    def _check_indices(self, indices: Iterable[int] | int) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        bad = idx[(idx < 0) | (idx >= self.n_reaches)]
        if bad.size:
            raise IndexError(f"reach indices out of range [0, {self.n_reaches}): {_name_ids(bad)}")
        return idx

    def upstream_closure(self, indices: Iterable[int] | int) -> np.ndarray:
        """Sorted user indices of the given reaches and everything upstream of them."""
        idx = self._check_indices(indices)
        stops = self._position[idx] + 1
        starts = self._subtree_first[idx]
        mark = _mark_ranges(self.n_reaches, starts, stops, self.topological_order)
        return np.flatnonzero(mark)

    def subnetwork(self, indices: Iterable[int] | int) -> tuple[RiverNetwork, np.ndarray]:
        """A new network over the given reaches (links leaving the set become outlets).

        Returns the sub-network and ``index_map``: for each sub-network reach, its user index in
        this network (``sub.ids == self.ids[index_map]``).
        """
        idx = np.unique(self._check_indices(indices))
        down = self.downstream_index[idx]
        inside = np.zeros(self.n_reaches, np.bool_)
        inside[idx] = True
        keep = (down >= 0) & inside[np.maximum(down, 0)]
        to_ids = np.where(keep, self.ids[np.maximum(down, 0)], 0).astype(np.int64)
        to_obj = pd.Series(to_ids, dtype="Int64").mask(~keep)
        return RiverNetwork.from_ids(self.ids[idx], to_obj), idx

    # ------------------------------------------------------------------ arrays for kernels
    def routing_arrays(self) -> dict[str, np.ndarray]:
        """Cached arrays for the routing kernels.

        ``order`` (user index of each topological position); ``down``, ``up_ptr``, ``up_idx`` in
        topological positions; ``user_down``, ``user_up_ptr``, ``user_up_idx`` in user indices.
        """
        if "routing" not in self._cache:
            order = self.topological_order
            pos_down = np.where(
                self.downstream_index[order] >= 0,
                self._position[np.maximum(self.downstream_index[order], 0)],
                -1,
            ).astype(np.int64)
            pos_ptr, pos_idx = _upstream_csr(pos_down)
            self._cache["routing"] = {
                "order": order,
                "down": pos_down,
                "up_ptr": pos_ptr,
                "up_idx": pos_idx,
                "user_down": self.downstream_index,
                "user_up_ptr": self.up_ptr,
                "user_up_idx": self.up_idx,
            }
        return self._cache["routing"]

    def level_groups(self) -> list[np.ndarray]:
        """User indices grouped by topological level (cached)."""
        if "level_groups" not in self._cache:
            lv = self.levels
            srt = np.argsort(lv, kind="stable")
            bounds = np.searchsorted(lv[srt], np.arange(lv.max() + 2 if lv.size else 1))
            self._cache["level_groups"] = [
                srt[bounds[k] : bounds[k + 1]] for k in range(bounds.size - 1)
            ]
        return self._cache["level_groups"]


def _lookup(
    sorted_ids: np.ndarray, sort: np.ndarray, query: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """User index of each query id, -1 where invalid or unknown."""
    n = sorted_ids.size
    if n == 0:
        return np.zeros(0, np.int64)
    loc = np.searchsorted(sorted_ids, query)
    loc_c = np.minimum(loc, n - 1)
    hit = valid & (loc < n) & (sorted_ids[loc_c] == query)
    return np.where(hit, sort[loc_c], -1).astype(np.int64)


def _upstream_csr(downstream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR (ptr, idx) of the reaches draining into each reach."""
    n = downstream.size
    has = downstream >= 0
    src = np.flatnonzero(has)
    dst = downstream[src]
    srt = np.argsort(dst, kind="stable")
    up_idx = src[srt].astype(np.int64)
    counts = np.bincount(dst, minlength=n)
    up_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=up_ptr[1:])
    return up_ptr, up_idx
