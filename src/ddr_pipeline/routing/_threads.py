"""Thread count of the compiled Muskingum–Cunge kernels.

With at least :data:`~ddr_pipeline.routing.constants.PARALLEL_MIN_REACHES` reaches (below that the
per-step thread hand-off costs more than it saves), the per-reach physics of each step (and its
reverse mode) is split into ``routing_threads()`` chunks; the topological sweep stays sequential.
The count is ``DDR_ROUTING_THREADS`` when set, else ``torch.get_num_threads()``, capped at numba's
pool size ``NUMBA_NUM_THREADS``. Results do not depend on it (bitwise).

numba's OpenMP threading layer sets the process-wide OpenMP thread count (which torch reads) to
``NUMBA_NUM_THREADS`` when it starts, i.e. the first time a parallel kernel runs; every kernel call
therefore runs inside :func:`torch_threads_kept`, so routing never changes torch's thread count.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import torch

from ddr_pipeline.routing.constants import PARALLEL_MIN_REACHES

ENV_THREADS = "DDR_ROUTING_THREADS"


def routing_threads() -> int:
    """Threads the kernels may use (≥ 1): ``DDR_ROUTING_THREADS`` or ``torch.get_num_threads()``,
    capped at ``numba.config.NUMBA_NUM_THREADS``."""
    raw = os.environ.get(ENV_THREADS)
    if raw is None:
        wanted = torch.get_num_threads()
    else:
        try:
            wanted = int(raw)
        except ValueError:
            raise ValueError(f"{ENV_THREADS} must be a positive integer, got {raw!r}") from None
        if wanted < 1:
            raise ValueError(f"{ENV_THREADS} must be a positive integer, got {raw!r}")
    return min(wanted, numba.config.NUMBA_NUM_THREADS)


def kernel_chunks(n_reaches: int) -> int:
    """Number of per-step work chunks for a network of ``n_reaches`` (1 = serial path); sets the
    numba thread count of the calling thread accordingly."""
    n = routing_threads() if n_reaches >= PARALLEL_MIN_REACHES else 1
    if n > 1:  # ``n`` chunks may exceed the pool (tests use 3 chunks on 2 threads)
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return n


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Restore ``torch.get_num_threads()`` after the block if it changed: the
    routing engine never changes torch's thread policy."""
    intra = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != intra:
            torch.set_num_threads(intra)
