"""Block plan of the task-parallel CPU engine: the network cut into contiguous position ranges.

The topological order is a depth-first post-order (every reach after the reaches draining into
it), so any cut of it into contiguous ranges ("blocks") gives a block graph whose edges go from
lower to higher block numbers: block b only depends on earlier blocks in the forward sweep and on
later blocks in the adjoint. The engine runs one task per (block, chunk of time steps); a task
starts once its block finished the previous chunk and the blocks it depends on finished the same
chunk, so blocks along a path work on successive chunks at once (a pipeline over time) and no
step waits for all threads.

A reach whose downstream reach lies in another block is a *source*; it gets a slot s (in
position order, so the slots of a block are contiguous). The forward publishes the state of
every source at every step in ``bnd[t, s]``; the consuming block reads it as a *ghost* entry
``N + s`` of its state vector (``xup_idx`` is the upstream CSR with cross-block entries replaced
by ghost indices). The adjoint sends C1·ν and the gradient for the upstream reach back through
the same slots.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from ddr_pipeline.network import RiverNetwork


@dataclass(frozen=True)
class CpuPlan:
    """Arrays of a block plan (topological positions unless stated).

    Attributes:
        bstart: (B+1,) block b owns positions ``bstart[b]:bstart[b+1]``.
        xup_idx: upstream CSR indices (``up_ptr`` of the network) with a reach of another block
            replaced by its ghost index ``N + slot``.
        src_pos: (S,) position of each slot's source reach (ascending).
        src_ptr: (B+1,) slots published by block b: ``src_ptr[b]:src_ptr[b+1]``.
        slot_of: (N,) slot of a source reach, −1 for the others.
        ghost_ptr, ghost_slot: the slots block b reads: ``ghost_slot[ghost_ptr[b]:ghost_ptr[b+1]]``.
        up_ptr, up_blocks: CSR of the blocks each block reads from (forward predecessors).
        down_ptr, down_blocks: CSR of the blocks each block feeds (adjoint predecessors).
    """

    bstart: np.ndarray
    xup_idx: np.ndarray
    src_pos: np.ndarray
    src_ptr: np.ndarray
    slot_of: np.ndarray
    ghost_ptr: np.ndarray
    ghost_slot: np.ndarray
    up_ptr: np.ndarray
    up_blocks: np.ndarray
    down_ptr: np.ndarray
    down_blocks: np.ndarray

    @property
    def n_blocks(self) -> int:
        """Number of blocks B."""
        return int(self.bstart.size - 1)

    @property
    def n_slots(self) -> int:
        """Number of source slots S."""
        return int(self.src_pos.size)

    def block_of(self, positions: np.ndarray) -> np.ndarray:
        """Block of each topological position."""
        return np.searchsorted(self.bstart, positions, side="right") - 1

    def kernel_arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays the task kernels read, in their order (``_mc_kernels``: ``plan``)."""
        return (self.bstart, self.xup_idx, self.src_pos, self.src_ptr, self.slot_of,
                self.ghost_ptr, self.ghost_slot)  # fmt: skip


def _csr(keys: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (ptr, values sorted by key, stable) of ``values`` grouped by ``keys`` in [0, n)."""
    srt = np.argsort(keys, kind="stable")
    ptr = np.searchsorted(keys[srt], np.arange(n + 1)).astype(np.int64)
    return ptr, values[srt].astype(np.int64)


def build_cpu_plan(
    down: np.ndarray, up_ptr: np.ndarray, up_idx: np.ndarray, n_blocks: int
) -> CpuPlan:
    """Cut the positions ``0 … N−1`` into ``n_blocks`` contiguous blocks of (nearly) equal size.

    ``down``/``up_ptr``/``up_idx``: downstream position and upstream CSR of every position.
    """
    n = down.size
    n_blocks = max(1, min(n_blocks, n))
    bstart = np.round(np.linspace(0, n, n_blocks + 1)).astype(np.int64)
    block = np.repeat(np.arange(n_blocks), np.diff(bstart))
    has_down = down >= 0
    cross = np.zeros(n, bool)
    cross[has_down] = block[down[has_down]] != block[has_down]
    src_pos = np.flatnonzero(cross).astype(np.int64)
    slot_of = np.full(n, -1, np.int64)
    slot_of[src_pos] = np.arange(src_pos.size)
    edge_slot = slot_of[up_idx]  # a source's only downstream reach is the one it feeds
    xup_idx = np.where(edge_slot >= 0, n + edge_slot, up_idx).astype(np.int64)
    consumer = block[down[src_pos]]
    producer = block[src_pos]
    ghost_ptr, ghost_slot = _csr(consumer, np.arange(src_pos.size), n_blocks)
    pairs = np.unique(np.stack([consumer, producer], axis=1), axis=0).reshape(-1, 2)
    up_ptr_b, up_blocks = _csr(pairs[:, 0], pairs[:, 1], n_blocks)
    down_ptr_b, down_blocks = _csr(pairs[:, 1], pairs[:, 0], n_blocks)
    return CpuPlan(
        bstart=bstart, xup_idx=xup_idx, src_pos=src_pos,
        src_ptr=np.searchsorted(src_pos, bstart).astype(np.int64), slot_of=slot_of,
        ghost_ptr=ghost_ptr, ghost_slot=ghost_slot, up_ptr=up_ptr_b, up_blocks=up_blocks,
        down_ptr=down_ptr_b, down_blocks=down_blocks,
    )  # fmt: skip


_plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def network_plan(net: RiverNetwork, n_blocks: int) -> CpuPlan:
    """:func:`build_cpu_plan` of ``net`` (cached per network and block count)."""
    plans = _plans.setdefault(net, {})
    if n_blocks not in plans:
        arrs = net.routing_arrays()
        plans[n_blocks] = build_cpu_plan(arrs["down"], arrs["up_ptr"], arrs["up_idx"], n_blocks)
    return plans[n_blocks]
