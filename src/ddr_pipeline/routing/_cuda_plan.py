"""Block plan of the CUDA Muskingum–Cunge kernels: the network cut into thread blocks.

A *piece* is a connected part of one basin with at most ``max_reaches`` reaches and at most
``max_levels`` levels (longest path inside the piece). Pieces are cut bottom-up from the
topological post-order: when a reach's uncut upstream subtree breaches a cap, its deepest (for the
level cap) or largest (for the size cap) upstream child becomes the root of a piece of its own.
Whole basins that fit are packed together (first fit, in position order) so a batch of small
gauge basins fills few blocks. One thread block runs one block of the plan, one thread per reach;
its reaches are sorted by *local* level (longest path from a headwater of the block), so a step is
one pass over the levels with a block barrier between them.

Blocks are numbered upstream first: a block only depends on lower-numbered blocks in the forward
sweep (through the reaches draining into it) and on one higher-numbered block in the adjoint (the
block its root drains into). Kernels take blocks in that order from an atomic ticket, so every
block they wait for has already started (no deadlock, whatever the residency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing._jit import njit


@dataclass(frozen=True)
class BlockPlan:
    """Host arrays of a block plan (topological positions unless stated).

    Attributes:
        slot_pos: (N,) position of each thread slot; block b owns ``blk_ptr[b]:blk_ptr[b+1]``.
        slot_level: (N,) local level of each slot (ascending within a block).
        blk_ptr: (B+1,) slot range of each block.
        blk_levels: (B,) number of local levels of each block.
        bup_ptr, bup_idx: CSR of the blocks draining into each block (forward waits).
        bdown: (B,) block the root drains into (−1: none; adjoint waits).
        xdown: (N,) 1 where the downstream reach lies in another block.
        bslot: (N,) boundary slot of a reach fed by another block (−1: none).
        n_bslots: number of boundary slots.
        threads: threads per block (the largest block).
    """

    slot_pos: np.ndarray
    slot_level: np.ndarray
    blk_ptr: np.ndarray
    blk_levels: np.ndarray
    bup_ptr: np.ndarray
    bup_idx: np.ndarray
    bdown: np.ndarray
    xdown: np.ndarray
    bslot: np.ndarray
    n_bslots: int
    threads: int

    @property
    def n_blocks(self) -> int:
        """Number of thread blocks B."""
        return int(self.blk_levels.size)

    def arrays(self) -> dict[str, np.ndarray]:
        """The kernel arrays by name."""
        names = ("slot_pos", "slot_level", "blk_ptr", "blk_levels", "bup_ptr", "bup_idx",
                 "bdown", "xdown", "bslot")  # fmt: skip
        return {name: getattr(self, name) for name in names}


@njit()
def _cut(  # noqa: PLR0912 (one bottom-up pass)
    down: np.ndarray, up_ptr: np.ndarray, up_idx: np.ndarray, max_reaches: int, max_levels: int
) -> np.ndarray:
    """Piece roots: ``root[k]`` is True for outlets and for cut reaches."""
    n = down.size
    size = np.ones(n, np.int64)
    depth = np.ones(n, np.int64)
    root = down < 0
    for k in range(n):
        while True:
            s = 1
            d = 1
            big = -1
            deep = -1
            for m in range(up_ptr[k], up_ptr[k + 1]):
                c = up_idx[m]
                if root[c]:
                    continue
                s += size[c]
                d = max(d, depth[c] + 1)
                if big < 0 or size[c] > size[big]:
                    big = c
                if deep < 0 or depth[c] > depth[deep]:
                    deep = c
            size[k] = s
            depth[k] = d
            if d > max_levels:
                root[deep] = True
            elif s > max_reaches:
                root[big] = True
            else:
                break
    return root


@njit()
def _pieces(down: np.ndarray, root: np.ndarray, up_ptr: np.ndarray, up_idx: np.ndarray):
    """Piece id (by root position), local level and size of every reach / piece."""
    n = down.size
    piece = np.empty(n, np.int64)
    for k in range(n - 1, -1, -1):  # downstream first
        piece[k] = k if root[k] else piece[down[k]]
    level = np.zeros(n, np.int64)
    for k in range(n):
        for m in range(up_ptr[k], up_ptr[k + 1]):
            c = up_idx[m]
            if not root[c]:
                level[k] = max(level[k], level[c] + 1)
    return piece, level


@njit()
def _pack(closed: np.ndarray, sizes: np.ndarray, max_reaches: int) -> tuple[np.ndarray, int]:
    """Block of every piece (in root order): closed basins first-fit into the open block,
    every other piece alone. Numbers grow with the root position (upstream first)."""
    block = np.empty(closed.size, np.int64)
    n_blocks = 0
    open_block = -1
    fill = 0
    for j in range(closed.size):
        if closed[j] and open_block >= 0 and fill + sizes[j] <= max_reaches:
            block[j] = open_block
            fill += sizes[j]
            continue
        block[j] = n_blocks
        if closed[j]:
            open_block = n_blocks
            fill = sizes[j]
        n_blocks += 1
    return block, n_blocks


def build_plan(net: RiverNetwork, max_reaches: int, max_levels: int) -> BlockPlan:
    """Cut ``net`` into thread blocks of at most ``max_reaches`` reaches and ``max_levels``
    local levels (see the module docstring)."""
    if max_reaches < 1 or max_levels < 1:
        raise ValueError(f"block caps must be >= 1, got {max_reaches}, {max_levels}")
    arrs = net.routing_arrays()
    down, up_ptr, up_idx = arrs["down"], arrs["up_ptr"], arrs["up_idx"]
    n = down.size
    root = _cut(down, up_ptr, up_idx, max_reaches, max_levels)
    piece, level = _pieces(down, root, up_ptr, up_idx)
    roots = np.flatnonzero(root)  # ascending position = upstream pieces first
    sizes = np.bincount(piece, minlength=n)[roots]
    depths = np.zeros(n, np.int64)
    np.maximum.at(depths, piece, level + 1)
    depths = depths[roots]
    fed = np.zeros(n, bool)  # pieces that another piece drains into
    fed[piece[down[roots[down[roots] >= 0]]]] = True
    closed = (down[roots] < 0) & ~fed[roots]
    block_of_root, n_blocks = _pack(closed, sizes, max_reaches)
    piece_index = np.full(n, -1, np.int64)
    piece_index[roots] = np.arange(roots.size)
    block = block_of_root[piece_index[piece]]  # block of every position
    blk_levels = np.zeros(n_blocks, np.int64)
    np.maximum.at(blk_levels, block_of_root, depths)
    # slots: by block, then local level, then position
    slot_pos = np.lexsort((np.arange(n), level, block)).astype(np.int64)
    counts = np.bincount(block, minlength=n_blocks)
    blk_ptr = np.zeros(n_blocks + 1, np.int64)
    np.cumsum(counts, out=blk_ptr[1:])
    # cross-block links
    has_down = down >= 0
    xdown = np.zeros(n, np.int8)
    xdown[has_down] = block[down[has_down]] != block[has_down]
    src = np.flatnonzero(xdown)
    dst = down[src]
    bslot = np.full(n, -1, np.int64)
    fed_reaches = np.unique(dst)
    bslot[fed_reaches] = np.arange(fed_reaches.size)
    bdown = np.full(n_blocks, -1, np.int64)
    bdown[block[src]] = block[dst]
    pairs = np.unique(np.stack([block[dst], block[src]], axis=1), axis=0).reshape(-1, 2)
    bup_ptr = np.zeros(n_blocks + 1, np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=n_blocks), out=bup_ptr[1:])
    return BlockPlan(
        slot_pos=slot_pos, slot_level=level[slot_pos].astype(np.int64), blk_ptr=blk_ptr,
        blk_levels=blk_levels, bup_ptr=bup_ptr, bup_idx=pairs[:, 1].astype(np.int64),
        bdown=bdown, xdown=xdown, bslot=bslot, n_bslots=int(fed_reaches.size),
        threads=int(counts.max()) if n else 1,
    )  # fmt: skip
