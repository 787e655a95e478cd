"""Split of the topological sweep into independent segments for threads.

Positions follow the depth-first post-order, so the upstream closure of position k is the slice
``[first[k], k + 1)``. A slice ``[a, b)`` whose reaches have all their upstream reaches inside it
(a run of consecutive closures) can be swept on its own; the chain ``b-1 → first[b-1]-1 → …`` lists
every such start ``a`` for a given end ``b``. :func:`sweep_segments` picks an end ``b`` (the reaches
from ``b`` on form the sequential "trunk") and up to ``n_seg`` consecutive segments of nearly equal
size covering ``[0, b)``, minimising the largest segment plus the trunk.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def subtree_first(up_ptr: np.ndarray, up_idx: np.ndarray) -> np.ndarray:
    """Start position of the upstream closure of every position (post-order CSR in positions)."""
    n = up_ptr.size - 1
    first = np.empty(n, np.int64)
    for k in range(n):
        f = k
        for m in range(up_ptr[k], up_ptr[k + 1]):
            f = min(f, first[up_idx[m]])
        first[k] = f
    return first


@numba.njit(cache=True)
def _chain(first: np.ndarray, b: int) -> np.ndarray:
    """Valid segment starts for the end ``b``, descending (b, …, 0)."""
    pts = [b]
    a = b
    while a > 0:
        a = first[a - 1]
        pts.append(a)
    return np.array(pts, np.int64)


@numba.njit(cache=True)
def _pick(chain: np.ndarray, b: int, n_seg: int) -> np.ndarray:
    """Boundaries 0 = s_0 < … < s_m = b from the chain points nearest to i·b/n_seg."""
    bounds = [0]
    j = chain.size - 1  # chain ascending when read backwards
    for i in range(1, n_seg):
        target = i * b // n_seg
        while j > 0 and chain[j - 1] <= target:
            j -= 1
        best = chain[j]
        if j > 0 and chain[j - 1] - target < target - best:
            best = chain[j - 1]
        if bounds[-1] < best < b:
            bounds.append(best)
    bounds.append(b)
    return np.array(bounds, np.int64)


@numba.njit(cache=True)
def sweep_segments(up_ptr: np.ndarray, up_idx: np.ndarray, n_seg: int) -> np.ndarray:
    """Segment boundaries ``s`` (``s[0] = 0``, ``s[-1] = b``): positions ``s[i]:s[i+1]`` can be
    swept concurrently, then ``b:n`` sequentially. ``n_seg == 1`` gives ``[0, n]``."""
    n = up_ptr.size - 1
    if n_seg <= 1 or n == 0:
        return np.array([0, n], np.int64)
    first = subtree_first(up_ptr, up_idx)
    best = np.array([0, n], np.int64)
    best_cost = n
    b = n
    while b > 0 and (b + n_seg - 1) // n_seg + (n - b) < best_cost:
        bounds = _pick(_chain(first, b), b, n_seg)
        cost = n - b
        largest = 0
        for i in range(bounds.size - 1):
            largest = max(largest, bounds[i + 1] - bounds[i])
        cost += largest
        if cost < best_cost:
            best_cost = cost
            best = bounds
        b -= 1
    return best
