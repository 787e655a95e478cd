"""Thread count of the numba engine, from one place.

``routing_threads(threads)``: the routing call's ``threads`` argument when given, else
``DDR_ROUTING_THREADS`` when set, else ``torch.get_num_threads()`` (which
``training.experiment.threads`` sets), always capped at numba's ``NUMBA_NUM_THREADS``. The engine
(``_cpu_engine``) runs its block tasks on that many Python threads calling ``nogil`` kernels;
networks below :data:`~ddr_pipeline.routing.constants.PARALLEL_MIN_REACHES` reaches and calls
below :data:`~ddr_pipeline.routing.constants.PARALLEL_MIN_REACH_STEPS` reach-steps run on one.
Results do not depend on the count (bitwise).

The kernels no longer use numba's parallel (OpenMP) layer, which sets the process-wide OpenMP
thread count (torch's) when it starts; every kernel call still runs inside
:func:`torch_threads_kept`, so no routing call can change torch's thread count.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import torch

ENV_THREADS = "DDR_ROUTING_THREADS"


def _positive(raw: object, what: str) -> int:
    try:
        value = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a positive integer, got {raw!r}") from None
    if value < 1 or isinstance(raw, bool):
        raise ValueError(f"{what} must be a positive integer, got {raw!r}")
    return value


def routing_threads(threads: int | None = None) -> int:
    """Threads the engine may use (≥ 1): ``threads`` if given, else ``DDR_ROUTING_THREADS``, else
    ``torch.get_num_threads()``; capped at ``numba.config.NUMBA_NUM_THREADS``."""
    if threads is not None:
        wanted = _positive(threads, "threads")
    elif (raw := os.environ.get(ENV_THREADS)) is not None:
        wanted = _positive(raw, ENV_THREADS)
    else:
        wanted = torch.get_num_threads()
    return min(wanted, numba.config.NUMBA_NUM_THREADS)


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
