"""The numba engine's drivers: the forward and the adjoint as (block, chunk) tasks.

:func:`layout` decides how a call is cut (threads, blocks, steps per chunk); :func:`forward` and
:func:`backward` allocate the buffers, run ``_mc_kernels``' ``init_*``, tasks (on
``_scheduler.run_tasks``) and ``finish_*``. One thread runs one block over the whole window in
a single task (the serial engine); more threads cut the network into ``threads ×
CPU_BLOCKS_PER_THREAD`` blocks (``_cpu_plan``) and the window into chunks of
``CPU_CHUNK_STEPS`` steps. Values and gradients are bitwise the same for every layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import constants as K
from ddr_pipeline.routing._cpu_plan import CpuPlan, network_plan
from ddr_pipeline.routing._levelpool import N_PAR
from ddr_pipeline.routing._mc_kernels import (
    backward_task,
    finish_backward,
    forward_task,
    init_backward,
    init_forward,
)
from ddr_pipeline.routing._nudge import NO_DA
from ddr_pipeline.routing._physics import LIM_QMIN, N_CB
from ddr_pipeline.routing._scheduler import run_tasks

#: The kernels' ``lk`` tuple without lakes (``_mc_kernels._lake_forward``: lake of each
#: position, parameters, (nwm, substeps), elevations, inflows, outflows, withdrawals).
_NO_LAKES = (np.empty(0, np.int64), np.empty((0, N_PAR)), np.zeros(2, np.int64),
             np.empty((0, 0)), np.empty((0, 0)), np.empty((0, 0)), np.empty((0, 0)))  # fmt: skip
_NO_LAKE_ADJOINT = (np.empty(0, np.float64), np.empty((0, 0), np.float64),
                    np.empty((0, N_PAR), np.float64))  # fmt: skip


@dataclass(frozen=True)
class Layout:
    """How one call is cut: ``threads`` workers, ``blocks`` blocks, ``chunk`` steps per task."""

    threads: int
    blocks: int
    chunk: int

    def backward_chunk(self, every: int) -> int:
        """Steps per adjoint task: a multiple of ``every`` (the recomputed segments), one
        segment on one thread (its states are held: O(N·every))."""
        if every == 1:
            return self.chunk
        return every if self.threads == 1 else every * max(1, self.chunk // every)


def layout(n_reaches: int, n_steps: int, threads: int, per_step_user: bool = False) -> Layout:
    """The cut of a call: one block and one task on one thread, below ``PARALLEL_MIN_REACHES``
    reaches or below ``PARALLEL_MIN_REACH_STEPS`` reach-steps; else ``threads ×
    CPU_BLOCKS_PER_THREAD`` blocks of at least ``CPU_BLOCK_MIN_REACHES`` reaches and chunks of
    ``CPU_CHUNK_STEPS`` steps.

    ``per_step_user``: the call reads or writes a (T, N) array in user columns every step (a
    dense trajectory, per-step Q′ or parameters). A block then touches every cache line of
    each such row (user columns are not contiguous per block), so the blocks are cut as few
    as the threads allow: one per thread."""
    per_thread = 1 if per_step_user else K.CPU_BLOCKS_PER_THREAD
    blocks = min(threads * per_thread, n_reaches // K.CPU_BLOCK_MIN_REACHES)
    small = n_reaches < K.PARALLEL_MIN_REACHES or n_reaches * n_steps < K.PARALLEL_MIN_REACH_STEPS
    if threads <= 1 or small or blocks < 2:
        return Layout(1, 1, max(n_steps, 1))
    return Layout(threads, blocks, K.CPU_CHUNK_STEPS)


@dataclass(frozen=True)
class ForwardRecord:
    """What the adjoint needs from the forward besides the stored trajectory: the layout and
    the sources' states at every step (``bnd``, (T+1, S))."""

    layout: Layout
    bnd: np.ndarray


def _observed(plan: CpuPlan, obs_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(obs_pos, obs_ptr, obs_idx): the observed reaches of each block, ascending index."""
    block = plan.block_of(obs_pos)
    srt = np.argsort(block, kind="stable")
    ptr = np.searchsorted(block[srt], np.arange(plan.n_blocks + 1)).astype(np.int64)
    return obs_pos, ptr, srt.astype(np.int64)


def _topo(net: RiverNetwork) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrs = net.routing_arrays()
    return arrs["order"], arrs["down"], arrs["up_ptr"]


def forward(  # noqa: PLR0913, PLR0917 (the kernel contract)
    net: RiverNetwork, qlat: np.ndarray, substeps: int, q0: np.ndarray, hot: bool,
    params: tuple, prow: np.ndarray, dt: float, leak: bool, lim: np.ndarray, traj: np.ndarray,
    traj_user: bool, every: int, obs_pos: np.ndarray, means: np.ndarray, clamp: np.ndarray,
    threads: int, da: tuple | None = None, lk: tuple | None = None,
) -> ForwardRecord:  # fmt: skip
    """Route ``qlat`` (``_mc_kernels`` contract): states into ``traj`` (user columns if
    ``traj_user``, else positions), interval means at ``obs_pos`` into ``means``, floor volume
    per reach (user columns) into ``clamp``; ``da``: the nudging arrays of
    ``_mc_kernels._assimilate`` (None: off); ``lk``: the lakes of ``_mc_kernels._lake_forward``
    (None: none; row 0 of its elevations set by the caller, the other rows filled here)."""
    n_rows, n_r = qlat.shape
    n_t = n_rows * substeps
    per_step = traj_user or (n_t > 1 and (substeps == 1 or bool(np.any(prow == 1))))
    lay = layout(n_r, n_t, threads, per_step)
    plan = network_plan(net, lay.blocks)
    topo, karr = _topo(net), plan.kernel_arrays()
    obs = _observed(plan, obs_pos)
    state = np.empty((2, n_r + plan.n_slots), traj.dtype)
    bnd = np.empty((n_t + 1, plan.n_slots), traj.dtype)
    cb, coef = np.empty((n_r, N_CB), np.float64), np.empty((n_r, 5), np.float64)
    macc, clamp_pos = np.zeros(obs_pos.size, np.float64), np.zeros(n_r, np.float64)
    da = NO_DA if da is None else da
    lk = _NO_LAKES if lk is None else lk
    init_forward(qlat, q0, hot, lim, topo, karr, state, traj, traj_user, bnd, lk[0])

    def run(b: int, q: int) -> None:
        t0 = q * lay.chunk
        forward_task(b, t0, min(t0 + lay.chunk, n_t), qlat, substeps, params, prow, dt, leak,
                     lim, topo, karr, obs, state, cb, coef, bnd, traj, traj_user, every, means,
                     macc, clamp_pos, da, lk)  # fmt: skip

    n_chunks = -(-n_t // lay.chunk)
    run_tasks(run, plan.n_blocks, n_chunks, plan.up_ptr, plan.down_ptr, plan.down_blocks,
              lay.threads, reverse=False)  # fmt: skip
    clamp[topo[0]] = clamp_pos
    return ForwardRecord(lay, bnd)


def backward(  # noqa: PLR0913, PLR0917 (the kernel contract)
    net: RiverNetwork, record: ForwardRecord, gdense: np.ndarray, gmeans: np.ndarray,
    obs_pos: np.ndarray, gfinal: np.ndarray, traj: np.ndarray, traj_user: bool, every: int,
    qlat: np.ndarray,
    substeps: int, q0: np.ndarray, hot: bool, params: tuple, prow: np.ndarray, dt: float,
    leak: bool, lim: np.ndarray, gqlat: np.ndarray, gparams: tuple, gq0: np.ndarray,
    lk: tuple | None = None, lka: tuple | None = None,
) -> None:  # fmt: skip
    """Adjoint of :func:`forward` (``_mc_kernels`` contract) with the forward's layout: dL/dqlat
    into ``gqlat`` ((0, N) when not wanted), parameter gradients into ``gparams``, dL/dq0 into
    ``gq0`` (untouched when ``hot``). Lakes: the forward's ``lk`` and ``lka = (λ_H, dense
    gradient of the elevations, parameter gradients)`` of ``_mc_kernels._lake_adjoint``
    (λ_H holds dL/dH_T on entry, dL/dH_0 on return)."""
    n_rows, n_r = qlat.shape
    n_t = n_rows * substeps
    lay = record.layout
    plan = network_plan(net, lay.blocks)
    topo, karr = _topo(net), plan.kernel_arrays()
    obs = _observed(plan, obs_pos)
    n_s, dtype = plan.n_slots, traj.dtype
    work = (np.empty((n_r, N_CB), np.float64), np.empty((n_r, 5), np.float64),
            np.empty((n_r, 10), np.float64), np.empty((n_r, 5), np.float64),
            np.zeros(n_r, np.float64), np.zeros((n_r, 10), np.float64),
            np.zeros(n_r if gqlat.shape[0] > 0 else 0, np.float64))  # fmt: skip
    adj = (np.empty((n_t, n_s), np.float64), np.empty((n_t, n_s), np.float64),
           np.empty((n_t, n_s), np.uint8))  # fmt: skip
    chunk = lay.backward_chunk(every)
    m = n_r if every > 1 else 0
    rec = (np.empty((chunk if m else 0, n_r), dtype), np.empty((2, m + n_s if m else 0), dtype),
           np.empty((m, N_CB), np.float64), np.empty((m, 5), np.float64))  # fmt: skip
    state = np.empty((2, n_r + n_s), dtype)
    lam = np.empty((2, n_r), np.float64)
    lk = _NO_LAKES if lk is None else lk
    lka = _NO_LAKE_ADJOINT if lka is None else lka
    init_backward(gdense, gmeans, obs_pos, gfinal, traj, traj_user, n_t, substeps, topo[0], state,
                  lam)  # fmt: skip
    n_chunks = -(-n_t // chunk)

    def run(b: int, q: int) -> None:
        c = n_chunks - 1 - q
        backward_task(b, c * chunk, min((c + 1) * chunk, n_t), gdense, gmeans, obs, traj,
                      traj_user, every, qlat, substeps, params, prow, dt, leak, lim, topo, karr, record.bnd,
                      state, lam, work, adj, rec, gqlat, gparams, lk, lka)  # fmt: skip

    run_tasks(run, plan.n_blocks, n_chunks, plan.down_ptr, plan.up_ptr, plan.up_blocks,
              lay.threads, reverse=True)  # fmt: skip
    finish_backward(lam[0], work[5], work[6], qlat, q0, hot, prow, lim[LIM_QMIN], topo[0],
                    topo[1], gqlat, gparams, gq0, lk[0])  # fmt: skip
