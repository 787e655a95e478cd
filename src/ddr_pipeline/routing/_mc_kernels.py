"""Compiled Muskingum–Cunge time loop (forward) and its adjoint (backward), as block tasks.

Kernel input contract (shared with any other backend of ``muskingum_cunge``):

* Arrays are in user column order; ``order`` (topological, user indices) and the upstream CSR
  (``up_ptr``, ``up_idx``, topological positions) drive the sweep; ``down`` holds downstream
  positions.
* ``qlat`` is (R, N): row r drives the ``substeps`` steps ``r·substeps … (r+1)·substeps − 1``
  (daily Q′ with ``substeps = 24`` for hourly steps), so the window has T = R·substeps steps.
* ``params`` is a tuple of ten (rows, N) arrays in :data:`PARAM_NAMES` order, the caller's own
  storage (no packed copy). ``prow[k]`` = steps per row of parameter k: 0 for a static (1, N)
  parameter, else row ``t // prow[k]`` drives step t (``prow = substeps`` for daily parameters,
  1 for per-step ones).
* The forward stores the state every ``every`` steps in ``traj`` (rows: t = 0, every, 2·every, …,
  then the final state T as the last row; ``every = 1`` gives the full (T+1, N) trajectory), in
  user columns (``traj_user``) or, when only the backward reads it, in topological positions
  (contiguous per block: no cache line shared by two blocks' writes).
  Optional means of the states at the reaches ``obs_pos`` (topological positions) over each row
  of ``qlat`` go to ``means`` (R, M): mean of Q[r·s+1 … r·s+s] (s = ``substeps``).
* The backward takes the output gradient as any of: dense rows ``gdense`` ((T+1, N), (1, N) for
  one row broadcast over all states, or (0, N) for none), the gradient of the means ``gmeans``
  ((R, M) or (0, M)) and of the final state ``gfinal`` ((N,) or (0,)). With ``every > 1`` it
  recomputes each segment of ``every`` steps from its stored state (one extra forward in total;
  memory O(N·T/every + N·every)) — every value and gradient is bitwise the same as ``every = 1``.
* Optional streamflow nudging (forward only, ``da`` tuple of :func:`_assimilate`): a gauged
  reach's Q_{t+1} is nudged right after its update, before the reaches downstream read it.
* Optional level-pool lakes (``lk`` tuple of :func:`_lake_forward`; ``_levelpool``): a lake
  reach's Q_{t+1} is its lake's outflow (not floored at Q_min) from the elevation H_t and the
  inflows I_t = Σ_up Q_t + Q′, I_{t+1} = Σ_up Q_{t+1} + Q′; the forward stores H (T+1, L) in
  float64 for the adjoint, which carries λ_H per lake in reverse time (:func:`_lake_adjoint`)
  and sends dL/dI_t, dL/dI_{t+1} to the upstream reaches as C2·ν and C1·ν are sent for a channel.
  A lake belongs to the block of its reach: no other task reads or writes its entries.
* Gradients are written in the storage dtype: ``gqlat`` (R, N) (or (0, N) when not wanted),
  ``gparams`` (rows, N) per parameter ((0, N) when not wanted), sums over the steps of a row
  accumulated in float64.

Tasks (``_cpu_plan``, ``_cpu_engine``): the positions are cut into contiguous blocks and the
window into chunks of steps; :func:`forward_task` routes one block over one chunk,
:func:`backward_task` runs the adjoint of one block over one chunk (reverse time). Inside a task
a step is the per-reach physics of the block's reaches, then their topological sweep. Values
cross blocks through per-step slot rows: ``bnd[t, s]`` (the forward state of source slot s, read
as a ghost entry ``N + s`` of the state vector) and, in the adjoint, C1·ν, the gradient sent
upstream and whether it was sent (``bc1``, ``bgu``, ``bfl``). Every reach does the same
arithmetic in the same order whatever the cut (the upstream sums in CSR order, the adjoint's
contributions to λ in the serial sweep's order), so values and gradients are bitwise
independent of the number of blocks, chunks and threads. ``init_*`` / ``finish_*`` run once per
call, before and after the tasks.

Tuples passed to the tasks: ``topo = (order, down, up_ptr)``, ``plan =``
``CpuPlan.kernel_arrays()``, ``obs = (obs_pos, obs_ptr, obs_idx)`` (the observed reaches of
each block, ascending index).
"""

from __future__ import annotations

import numpy as np

from ddr_pipeline.routing._jit import njit
from ddr_pipeline.routing._levelpool import (
    N_PAR,
    SUBSTEPS_MAX,
    lake_par,
    lake_step,
    lake_step_vjp,
)
from ddr_pipeline.routing._nudge import nudge_value
from ddr_pipeline.routing._physics import (
    LIM_CEL_EXACT,
    LIM_GEOM_DDR,
    LIM_QMIN,
    LIM_X_CUNGE,
    fill_constants,
    reach_coefs,
    reach_physics,
    reach_vjp,
    rows_change,
    upstream_sums,
)


@njit(error_model="numpy", inline="always")
def _unfloored_update(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    c1: float, c2: float, c3: float, c4: float, zr: float, qt: float, ql: float, usum: float,
    vsum: float, leak: bool,
) -> tuple[float, float, float]:  # fmt: skip
    """(y, ζ, F): the update before the Q_min floor, the exchange ζ = clamp(ζ_raw, −F, F) (0
    without leakance) and F = Q′ + Σ_up Q_t."""
    f = ql + usum
    zeta = 0.0
    if leak:
        zeta = min(max(zr, -f), f)
    y = c1 * vsum + c2 * usum + c3 * qt
    y += c4 * (ql - zeta)
    return y, zeta, f


@njit(error_model="numpy", inline="always")
def update_adjoint(  # noqa: PLR0913, PLR0917 (scalar device function)
    mu: float, c1: float, c2: float, c3: float, c4: float, zr: float, qt: float, ql: float,
    usum: float, vsum: float, leak: bool, qmin: float,
) -> tuple:  # fmt: skip
    """Reverse mode of one reach's update Q_{t+1} = max(y, Q_min) for μ = dL/dQ_{t+1} (the
    numba engine's sweep and the CUDA adjoint both call it; ν = μ where the floor is inactive).

    Returns (sent, C1·ν, ν·C2 + g_F, dL/dQ′ = ν·C4 + g_F, ν·C3, dL/dC1 … dL/dC4, dL/dζ_raw):
    ``sent`` is False (and every term 0) where the floor is active or μ = 0; g_F = ±dL/dζ where
    the exchange ζ is clamped at ±F (F = Q′ + Σ_up Q_t), else dL/dζ goes to ζ_raw."""
    y, zeta, f = _unfloored_update(c1, c2, c3, c4, zr, qt, ql, usum, vsum, leak)
    if y < qmin or mu == 0.0:
        return False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    gzeta = -mu * c4
    g_f = 0.0
    gzr = 0.0
    if leak:
        if zr > f:
            g_f = gzeta
        elif zr < -f:
            g_f = -gzeta
        else:
            gzr = gzeta
    return (True, c1 * mu, mu * c2 + g_f, mu * c4 + g_f, mu * c3, mu * vsum, mu * usum, mu * qt,
            mu * (ql - zeta), gzr)  # fmt: skip


@njit(error_model="numpy")
def hot_start(qlat0: np.ndarray, order: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Σ of ``qlat0`` (user columns) over each reach and everything upstream, by topological
    position (float64, not floored). ``down`` holds downstream positions."""
    acc = np.empty(order.size, np.float64)
    for k in range(order.size):
        acc[k] = qlat0[order[k]]
    for k in range(order.size):
        if down[k] >= 0:
            acc[down[k]] += acc[k]
    return acc


@njit(error_model="numpy")
def _initial_row(  # noqa: PLR0917 (compiled kernel / autograd signature)
    qlat: np.ndarray, q0: np.ndarray, hot: bool, qmin: float, order: np.ndarray, down: np.ndarray,
    row: np.ndarray, lake_of: np.ndarray,
) -> None:  # fmt: skip
    """Q_0 by position: the hot start or the given state, floored at Q_min (a given lake
    outflow is not floored: a call continuing another reads the outflow it ended with)."""
    if hot:
        acc = hot_start(qlat[0], order, down)
        for k in range(order.size):
            row[k] = max(acc[k], qmin)
    else:
        lakes = lake_of.size > 0
        for k in range(order.size):
            q = q0[order[k]]
            row[k] = q if lakes and lake_of[k] >= 0 else max(q, qmin)


@njit(error_model="numpy", inline="always")
def _settings(lim: np.ndarray) -> tuple:
    """The settings vector as a tuple: its values stay in registers across a loop that stores
    into other float64 arrays (an array could alias them and would be re-read per reach)."""
    return (lim[0], lim[1], lim[2], lim[3], lim[4], lim[5], lim[6], lim[7], lim[8], lim[9],
            lim[10], lim[11], lim[12])  # fmt: skip


@njit(error_model="numpy", inline="always")
def _plain_settings(lim: np.ndarray) -> tuple:
    """:func:`_settings` with both Cunge options and DDR's geometry off as literal constants: a loop given this
    tuple compiles without their branches (the physics is the same source)."""
    return (lim[0], lim[1], lim[2], lim[3], lim[4], lim[5], lim[6], lim[7], lim[8], lim[9],
            0.0, 0.0, 0.0)  # fmt: skip


@njit(error_model="numpy", inline="always")
def _plain(lim: np.ndarray) -> bool:
    """Whether both Cunge options and DDR's geometry are off (``x_mode="data"``,
    ``celerity="wide_rectangle"``, ``geometry="learned"``)."""
    return lim[LIM_X_CUNGE] == 0.0 and lim[LIM_CEL_EXACT] == 0.0 and lim[LIM_GEOM_DDR] == 0.0


@njit(error_model="numpy")
def _refresh_mode(loaded: int, t: int, prow: np.ndarray) -> int:
    """How to bring a constant buffer holding step ``loaded`` (−1 = nothing) to step t:
    0 = keep, 1 = refresh the time-varying columns, 2 = fill everything."""
    if loaded < 0:
        return 2
    return 1 if rows_change(prow, loaded, t) else 0


@njit(error_model="numpy")
def _traj_row(t: int, n_t: int, every: int) -> int:
    """Row of ``traj`` that holds the state at step t, or −1 when it is not stored."""
    if t == n_t:
        return (n_t - 1) // every + 1
    return t // every if t % every == 0 else -1


@njit(error_model="numpy")
def traj_rows(n_t: int, every: int) -> int:
    """Rows of the stored trajectory: states 0, every, 2·every, … below T, then the state T."""
    return (n_t - 1) // every + 2


@njit(error_model="numpy")
def _forward_physics(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, cur: np.ndarray, t: int, mode: int, params: tuple,
    prow: np.ndarray, dt: float, leak: bool, lim: np.ndarray, order: np.ndarray, lo: int, hi: int,
) -> None:  # fmt: skip
    """C1..C4, ζ_raw of positions ``lo:hi`` at step t into ``coef`` (constants refreshed first
    per ``mode``, see :func:`_refresh_mode`)."""
    if mode > 0:
        fill_constants(cb, t, params, prow, lim, order, mode == 2, lo, hi)
    if _plain(lim):  # the same loop, compiled without the option branches
        _coef_loop(cb, coef, cur, dt, leak, _plain_settings(lim), lo, hi)
    else:
        _coef_loop(cb, coef, cur, dt, leak, _settings(lim), lo, hi)


@njit(error_model="numpy", inline="always")
def _coef_loop(  # noqa: PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, cur: np.ndarray, dt: float, leak: bool, limt: tuple,
    lo: int, hi: int,
) -> None:  # fmt: skip
    for k in range(lo, hi):
        c1, c2, c3, c4, zr = reach_coefs(cb, k, float(cur[k]), dt, leak, limt)
        coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4] = c1, c2, c3, c4, zr


@njit(error_model="numpy")
def _load_ghosts(  # noqa: PLR0917 (compiled kernel signature)
    b: int, t: int, cur: np.ndarray, nxt: np.ndarray, bnd: np.ndarray, plan: tuple
) -> None:
    """Ghost entries of block b: the states Q_t, Q_{t+1} of the reaches of other blocks that
    drain into it (``bnd`` rows t and t+1)."""
    n = plan[4].size  # slot_of: one entry per position
    ghost_ptr, ghost_slot = plan[5], plan[6]
    for g in range(ghost_ptr[b], ghost_ptr[b + 1]):
        s = ghost_slot[g]
        cur[n + s] = bnd[t, s]
        nxt[n + s] = bnd[t + 1, s]


@njit(error_model="numpy")
def _block_step(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    b: int, t: int, cur: np.ndarray, nxt: np.ndarray, cb: np.ndarray, coef: np.ndarray,
    mode: int, qlat: np.ndarray, substeps: int, params: tuple, prow: np.ndarray, dt: float,
    leak: bool, lim: np.ndarray, topo: tuple, plan: tuple, bnd: np.ndarray,
    clamp_pos: np.ndarray, dst: np.ndarray, dst_row: int, dst_user: bool, da: tuple, lk: tuple,
) -> None:  # fmt: skip
    """Step t of block b: Q_t (``cur``, positions + ghosts) -> Q_{t+1} (``nxt``); ``cb`` is
    refreshed per ``mode``. Adds the floor volume to ``clamp_pos`` (by position; empty to
    skip), nudges gauged reaches toward their observations (``da``, :func:`_assimilate`; off
    when its first array is empty) before their downstream reaches read them, and stores
    Q_{t+1} in ``dst[dst_row]`` when ``dst_row >= 0`` (user columns if ``dst_user``, else
    positions). A lake reach (``lk``, :func:`_lake_forward`; none when its first array is
    empty) takes its level-pool outflow instead of the Muskingum–Cunge update."""
    order, up_ptr = topo[0], topo[2]
    lo, hi = plan[0][b], plan[0][b + 1]
    xup_idx = plan[1]
    qmin = lim[LIM_QMIN]
    _forward_physics(cb, coef, cur, t, mode, params, prow, dt, leak, lim, order, lo, hi)
    _load_ghosts(b, t, cur, nxt, bnd, plan)
    track = clamp_pos.size > 0
    nudged = da[0].size > 0
    lakes = lk[0].size > 0
    r = t // substeps
    for k in range(lo, hi):
        i = order[k]
        usum, vsum = upstream_sums(cur, nxt, up_ptr, xup_idx, k)
        if lakes and lk[0][k] >= 0:
            y = _lake_forward(lk, lk[0][k], t, usum, vsum, float(qlat[r, i]), dt)
        else:
            y = _unfloored_update(coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4],
                                  float(cur[k]), float(qlat[r, i]), usum, vsum, leak)[0]  # fmt: skip
            if y < qmin:
                if track:
                    clamp_pos[k] += (qmin - y) * dt
                y = qmin
        if nudged and da[0][k] >= 0:
            y = _assimilate(da, da[0][k], t, y, dt, qmin)
        nxt[k] = y
        if dst_row >= 0:
            if dst_user:
                dst[dst_row, i] = nxt[k]
            else:
                dst[dst_row, k] = nxt[k]


@njit(error_model="numpy")
def _lake_forward(  # noqa: PLR0917 (compiled kernel signature)
    lk: tuple, lake: int, t: int, usum: float, vsum: float, ql: float, dt: float
) -> float:
    """Level-pool step t of ``lake`` (``_levelpool.lake_step``) with inflow I_t = Σ_up Q_t + Q′
    and I_{t+1} = Σ_up Q_{t+1} + Q′: stores H_{t+1}, the step-mean inflow, the outflow and the
    withdrawal, returns the outflow. ``lk = (lake_of, params (L, 10), (nwm, substeps), H (T+1,
    L), inflow (T, L), outflow (T, L), withdrawal (T, L))``; each lake is read and written by
    the block that owns its reach only."""
    lpar, cfg, hh, lin, lout, lwd = lk[1], lk[2], lk[3], lk[4], lk[5], lk[6]
    i0, i1 = usum + ql, vsum + ql
    h1, out, wd, _ = lake_step(hh[t, lake], i0, i1, dt, lake_par(lpar, lake), cfg[0] != 0,
                               cfg[1])  # fmt: skip
    hh[t + 1, lake] = h1
    lin[t, lake] = 0.5 * (i0 + i1)
    lout[t, lake] = out
    lwd[t, lake] = wd
    return out


@njit(error_model="numpy", inline="always")
def _assimilate(da: tuple, g: int, t: int, y: float, dt: float, qmin: float) -> float:  # noqa: PLR0917
    """Nudge gauge g's routed value ``y`` at step t (``_nudge.nudge_value``): updates its last
    observation and time, records the correction. ``da = (gauge_of, obs, last_val, last_time,
    corr, par)``: gauge of each position (−1: none), observations (T, G) (NaN: none), last
    observation and its time (s from the call's start; NaN: none), corrections (T, G) out,
    ``par = (gain, τ in s)``."""
    obs, last_val, last_time, corr, par = da[1], da[2], da[3], da[4], da[5]
    q, c, lv, lt = nudge_value(y, obs[t, g], last_val[g], last_time[g], (t + 1) * dt, par[0],
                               par[1], qmin)  # fmt: skip
    last_val[g], last_time[g] = lv, lt
    corr[t, g] = c
    return q


@njit(error_model="numpy")
def no_assimilation() -> tuple:
    """The ``da`` tuple that turns nudging off (empty arrays of the right types)."""
    e1, e2 = np.empty(0, np.float64), np.empty((0, 0), np.float64)
    return (np.empty(0, np.int64), e2, e1, e1, e2, e1)


@njit(error_model="numpy")
def _block_means(  # noqa: PLR0917 (compiled kernel signature)
    b: int, t: int, nxt: np.ndarray, obs: tuple, means: np.ndarray, macc: np.ndarray,
    substeps: int,
) -> None:  # fmt: skip
    """Add Q_{t+1} of block b's observed reaches to their interval sums; store the means at
    the end of an input row."""
    obs_pos, obs_ptr, obs_idx = obs
    for m in range(obs_ptr[b], obs_ptr[b + 1]):
        j = obs_idx[m]
        macc[j] += nxt[obs_pos[j]]
    if (t + 1) % substeps == 0:
        for m in range(obs_ptr[b], obs_ptr[b + 1]):
            j = obs_idx[m]
            means[t // substeps, j] = macc[j] / substeps
            macc[j] = 0.0


@njit(error_model="numpy")
def init_forward(  # noqa: PLR0917 (compiled kernel signature)
    qlat: np.ndarray, q0: np.ndarray, hot: bool, lim: np.ndarray, topo: tuple, plan: tuple,
    state: np.ndarray, traj: np.ndarray, traj_user: bool, bnd: np.ndarray, lake_of: np.ndarray,
) -> None:  # fmt: skip
    """Initial state (given or hot start, floored) into ``state[0]``, ``traj[0]`` (user columns
    if ``traj_user``, else positions) and ``bnd[0]``."""
    order, down = topo[0], topo[1]
    src_pos = plan[2]
    row = state[0]
    _initial_row(qlat, q0, hot, lim[LIM_QMIN], order, down, row, lake_of)
    for k in range(order.size):
        traj[0, order[k] if traj_user else k] = row[k]
    for s in range(src_pos.size):
        bnd[0, s] = row[src_pos[s]]


@njit(error_model="numpy", nogil=True)
def forward_task(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    b: int, t0: int, t1: int, qlat: np.ndarray, substeps: int, params: tuple, prow: np.ndarray,
    dt: float, leak: bool, lim: np.ndarray, topo: tuple, plan: tuple, obs: tuple,
    state: np.ndarray, cb: np.ndarray, coef: np.ndarray, bnd: np.ndarray, traj: np.ndarray,
    traj_user: bool, every: int, means: np.ndarray, macc: np.ndarray, clamp_pos: np.ndarray,
    da: tuple, lk: tuple,
) -> None:  # fmt: skip
    """Route block b over steps ``t0 … t1 − 1`` (module docstring: contract). ``state`` (2, N+S)
    holds Q_t of step t in row t mod 2; publishes the block's sources in ``bnd``, stores the
    trajectory rows, the means of its observed reaches and its floor volume; ``da``: the
    nudging arrays (:func:`_assimilate`, :func:`no_assimilation`); ``lk``: the lakes
    (:func:`_lake_forward`; ``_cpu_engine._NO_LAKES`` for none)."""
    n_t = qlat.shape[0] * substeps
    src_pos, src_ptr = plan[2], plan[3]
    for t in range(t0, t1):
        cur, nxt = state[t & 1], state[(t + 1) & 1]
        _block_step(b, t, cur, nxt, cb, coef, _refresh_mode(t - 1, t, prow), qlat, substeps,
                    params, prow, dt, leak, lim, topo, plan, bnd, clamp_pos, traj,
                    _traj_row(t + 1, n_t, every), traj_user, da, lk)  # fmt: skip
        for s in range(src_ptr[b], src_ptr[b + 1]):
            bnd[t + 1, s] = nxt[src_pos[s]]
        _block_means(b, t, nxt, obs, means, macc, substeps)


@njit(error_model="numpy")
def _backward_physics(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, inter: np.ndarray, cur: np.ndarray, lam: np.ndarray,
    states: np.ndarray, srow: int, user: bool, gdense: np.ndarray, t: int, mode: int,
    params: tuple, prow: np.ndarray, dt: float, leak: bool, lim: np.ndarray, order: np.ndarray,
    lo: int, hi: int,
) -> None:  # fmt: skip
    """Positions ``lo:hi`` at step t: load Q_t (``states[srow]``, user columns if ``user``,
    else positions) and the dense output gradient of Q_t, recompute the physics (coefficients
    into ``coef``, intermediates into ``inter``)."""
    if mode > 0:
        fill_constants(cb, t, params, prow, lim, order, mode == 2, lo, hi)
    g_rows = gdense.shape[0]
    tg = t if g_rows > 1 else 0
    if _plain(lim):  # the same loop, compiled without the option branches
        _physics_loop(cb, coef, inter, cur, lam, states, srow, user, gdense, tg, dt, leak,
                      _plain_settings(lim), order, lo, hi)  # fmt: skip
    else:
        _physics_loop(cb, coef, inter, cur, lam, states, srow, user, gdense, tg, dt, leak,
                      _settings(lim), order, lo, hi)  # fmt: skip


@njit(error_model="numpy", inline="always")
def _physics_loop(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, inter: np.ndarray, cur: np.ndarray, lam: np.ndarray,
    states: np.ndarray, srow: int, user: bool, gdense: np.ndarray, tg: int, dt: float,
    leak: bool, limt: tuple, order: np.ndarray, lo: int, hi: int,
) -> None:  # fmt: skip
    g_rows = gdense.shape[0]
    for k in range(lo, hi):
        cur[k] = states[srow, order[k]] if user else states[srow, k]
        lam[k] = gdense[tg, order[k]] if g_rows > 0 else 0.0
        ph = reach_physics(cb, k, float(cur[k]), dt, leak, limt)
        coef[k, 0], coef[k, 1], coef[k, 2] = ph[0], ph[1], ph[2]
        coef[k, 3], coef[k, 4] = ph[3], ph[4]
        inter[k, 0], inter[k, 1], inter[k, 2], inter[k, 3] = ph[5], ph[6], ph[7], ph[8]
        inter[k, 4], inter[k, 5], inter[k, 6], inter[k, 7] = ph[9], ph[10], ph[11], ph[12]
        inter[k, 8], inter[k, 9] = ph[13], ph[14]


@njit(error_model="numpy", inline="always")
def _send_up(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    k: int, t: int, c1nu: float, gu: float, sent: bool, up_ptr: np.ndarray, xup_idx: np.ndarray,
    lam: np.ndarray, adj: tuple,
) -> None:  # fmt: skip
    """The adjoint's terms from reach k to its upstream reaches at step t: ``gu`` into their
    λ (when ``sent``); for a reach of another block, C1·ν, ``gu`` and ``sent`` into its slot."""
    n = lam.size
    bc1, bgu, bfl = adj
    for m in range(up_ptr[k], up_ptr[k + 1]):
        j = xup_idx[m]
        if j < n:
            if sent:
                lam[j] += gu
        else:
            bc1[t, j - n] = c1nu
            bgu[t, j - n] = gu
            bfl[t, j - n] = 1 if sent else 0


@njit(error_model="numpy")
def _adjoint_sweep(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    b: int, t: int, want_ql: bool, cur: np.ndarray, nxt: np.ndarray, qlat: np.ndarray,
    substeps: int, work: tuple, lam: np.ndarray, lam_next: np.ndarray, topo: tuple, plan: tuple,
    adj: tuple, leak: bool, qmin: float, dt: float, lk: tuple, lka: tuple,
) -> None:  # fmt: skip
    """Reverse topological sweep of block b at step t: ν, dL/dQ′ added into ``gql`` (float64,
    positions, when ``want_ql``), dL/d(C1..C4, ζ_raw) into ``gcoef``, and the direct terms of
    dL/dQ_t into ``lam``. A reach draining into another block takes C1·ν and the gradient of
    its downstream reach from its slot (``adj``). A lake reach runs :func:`_lake_adjoint`
    instead (``lka``)."""
    order, down, up_ptr = topo
    lo, hi, xup_idx, slot_of = plan[0][b], plan[0][b + 1], plan[1], plan[4]
    coef, gcoef, c1nu, gql = work[1], work[3], work[4], work[6]
    bc1, bgu, bfl = adj
    r = t // substeps
    lakes = lk[0].size > 0
    for k in range(hi - 1, lo - 1, -1):
        i = order[k]
        mu = lam_next[k]
        s = slot_of[k]
        if s >= 0:
            mu += bc1[t, s]
            if bfl[t, s]:
                lam[k] += bgu[t, s]
        elif down[k] >= 0:
            mu += c1nu[down[k]]
        usum, vsum = upstream_sums(cur, nxt, up_ptr, xup_idx, k)
        qt = float(cur[k])
        ql = float(qlat[r, i])
        if lakes and lk[0][k] >= 0:
            gi0, gi1 = _lake_adjoint(lk, lka, lk[0][k], t, usum, vsum, ql, dt, mu)
            c1nu[k] = gi1  # dI_{t+1}/dQ_{t+1} = 1 for every upstream reach
            if want_ql:
                gql[k] += gi0 + gi1
            _send_up(k, t, gi1, gi0, True, up_ptr, xup_idx, lam, adj)
            gcoef[k, 0], gcoef[k, 1], gcoef[k, 2], gcoef[k, 3], gcoef[k, 4] = (
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
            )
            continue
        sent, c1nu_k, gu, gq, gl3, g1, g2, g3, g4, gzr = update_adjoint(
            mu, coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4], qt, ql, usum, vsum,
            leak, qmin,
        )  # fmt: skip
        c1nu[k] = c1nu_k
        if sent:
            if want_ql:
                gql[k] += gq
            lam[k] += gl3
        _send_up(k, t, c1nu_k, gu, sent, up_ptr, xup_idx, lam, adj)
        gcoef[k, 0], gcoef[k, 1], gcoef[k, 2], gcoef[k, 3], gcoef[k, 4] = g1, g2, g3, g4, gzr


@njit(error_model="numpy")
def _lake_adjoint(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    lk: tuple, lka: tuple, lake: int, t: int, usum: float, vsum: float, ql: float, dt: float,
    mu: float,
) -> tuple[float, float]:  # fmt: skip
    """Reverse mode of :func:`_lake_forward` at step t for dL/d(outflow) = ``mu``: λ_H of the
    lake goes from dL/dH_{t+1} to dL/dH_t (plus the dense gradient of H_t), its parameter
    gradients accumulate (float64); returns (dL/dI_t, dL/dI_{t+1}). ``lka = (λ_H (L,), dense
    gradient of H ((T+1, L) or (0, L)), parameter gradients (L, 10), scratch (SUBSTEPS_MAX+1,),
    scratch (10,))``."""
    lpar, cfg, hh = lk[1], lk[2], lk[3]
    lam_h, ghd, glake, hs, gp = lka
    for m in range(N_PAR):
        gp[m] = 0.0
    gh0, gi0, gi1 = lake_step_vjp(hh[t, lake], usum + ql, vsum + ql, dt, lake_par(lpar, lake),
                                  cfg[0] != 0, cfg[1], lam_h[lake], mu, hs, gp)  # fmt: skip
    if ghd.shape[0] > 0:
        gh0 += ghd[t, lake]
    lam_h[lake] = gh0
    for m in range(N_PAR):
        glake[lake, m] += gp[m]
    return gi0, gi1


@njit(error_model="numpy")
def _backward_vjp(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, inter: np.ndarray, gcoef: np.ndarray, cur: np.ndarray,
    lam: np.ndarray, gacc: np.ndarray, gparams: tuple, t: int, prow: np.ndarray, dt: float,
    leak: bool, lim: np.ndarray, order: np.ndarray, lo: int, hi: int,
) -> None:  # fmt: skip
    """Positions ``lo:hi`` at step t: reverse mode of the physics into ``lam`` (dL/dQ_t) and
    ``gacc``; a time-varying parameter whose row starts at step t gets that row stored into its
    ``gparams`` entry (when wanted, i.e. non-empty), then its accumulator reset."""
    if _plain(lim):  # the same loop, compiled without the option branches
        _vjp_loop(cb, coef, inter, gcoef, cur, lam, gacc, dt, leak, _plain_settings(lim), lo, hi)
    else:
        _vjp_loop(cb, coef, inter, gcoef, cur, lam, gacc, dt, leak, _settings(lim), lo, hi)
    for p in range(prow.size):
        if prow[p] > 0 and t % prow[p] == 0:
            dst = gparams[p]
            want = dst.shape[0] > 0
            row = t // prow[p]
            for k in range(lo, hi):
                if want:
                    dst[row, order[k]] = gacc[k, p]
                gacc[k, p] = 0.0


@njit(error_model="numpy", inline="always")
def _vjp_loop(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, inter: np.ndarray, gcoef: np.ndarray, cur: np.ndarray,
    lam: np.ndarray, gacc: np.ndarray, dt: float, leak: bool, limt: tuple, lo: int, hi: int,
) -> None:  # fmt: skip
    for k in range(lo, hi):
        g1, g2, g3, g4, gzr = gcoef[k, 0], gcoef[k, 1], gcoef[k, 2], gcoef[k, 3], gcoef[k, 4]
        if g1 == 0.0 and g2 == 0.0 and g3 == 0.0 and g4 == 0.0 and gzr == 0.0:
            continue
        ph = (coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4], inter[k, 0],
              inter[k, 1] != 0.0, inter[k, 2], inter[k, 3], inter[k, 4] != 0.0, inter[k, 5],
              inter[k, 6], inter[k, 7], inter[k, 8] != 0.0, inter[k, 9])  # fmt: skip
        r = reach_vjp(cb, k, float(cur[k]), ph, (g1, g2, g3, g4, gzr), dt, leak, limt)
        lam[k] += r[0]
        gacc[k, 0] += r[1]
        gacc[k, 1] += r[2]
        gacc[k, 2] += r[3]
        gacc[k, 3] += r[4]
        gacc[k, 4] += r[5]
        gacc[k, 5] += r[6]
        gacc[k, 6] += r[7]
        gacc[k, 7] += r[8]
        gacc[k, 8] += r[9]
        gacc[k, 9] += r[10]


@njit(error_model="numpy")
def _recompute(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    b: int, s0: int, s1: int, traj: np.ndarray, traj_user: bool, every: int, rec: tuple,
    qlat: np.ndarray,
    substeps: int, params: tuple, prow: np.ndarray, dt: float, leak: bool, lim: np.ndarray,
    topo: tuple, plan: tuple, bnd: np.ndarray, lk: tuple,
) -> None:  # fmt: skip
    """States s0 … s1 of block b into ``seg`` rows 0 … s1 − s0 (positions), from the stored
    state s0 (a multiple of ``every``) by the forward's own steps, the other blocks' states
    from ``bnd``: bitwise the forward's values (a lake's stored elevations, inflows and
    outflows are written again with the same values)."""
    seg, state, cb, coef = rec
    order = topo[0]
    lo, hi = plan[0][b], plan[0][b + 1]
    src = s0 // every
    row = state[s0 & 1]
    for k in range(lo, hi):
        v = traj[src, order[k] if traj_user else k]
        seg[0, k] = v
        row[k] = v
    no_clamp = np.empty(0, np.float64)
    no_da = no_assimilation()
    for t in range(s0, s1):
        # constants are filled in full for the first step (not shared with the backward's)
        _block_step(b, t, state[t & 1], state[(t + 1) & 1], cb, coef,
                    2 if t == s0 else _refresh_mode(t - 1, t, prow), qlat, substeps, params,
                    prow, dt, leak, lim, topo, plan, bnd, no_clamp, seg, t + 1 - s0,
                    False, no_da, lk)  # fmt: skip


@njit(error_model="numpy")
def _block_observed(  # noqa: PLR0917 (compiled kernel signature)
    b: int, t: int, lam: np.ndarray, obs: tuple, gmeans: np.ndarray, substeps: int
) -> None:
    """Add the gradient of the interval means (none when ``gmeans`` has no rows) to λ of block
    b's observed reaches at step t."""
    if t == 0 or gmeans.shape[0] == 0:
        return
    obs_pos, obs_ptr, obs_idx = obs
    for m in range(obs_ptr[b], obs_ptr[b + 1]):
        j = obs_idx[m]
        lam[obs_pos[j]] += gmeans[(t - 1) // substeps, j] / substeps


@njit(error_model="numpy", nogil=True)
def backward_task(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    b: int, t0: int, t1: int, gdense: np.ndarray, gmeans: np.ndarray, obs: tuple,
    traj: np.ndarray, traj_user: bool, every: int, qlat: np.ndarray, substeps: int, params: tuple,
    prow: np.ndarray, dt: float, leak: bool, lim: np.ndarray, topo: tuple, plan: tuple,
    bnd: np.ndarray, state: np.ndarray, lam: np.ndarray, work: tuple, adj: tuple, rec: tuple,
    gqlat: np.ndarray, gparams: tuple, lk: tuple, lka: tuple,
) -> None:  # fmt: skip
    """Adjoint of block b over steps ``t1 − 1 … t0`` (module docstring: contract).

    ``state`` (2, N+S) and ``lam`` (2, N) hold Q_t and λ_t = dL/dQ_t in row t mod 2; ``work`` =
    (cb, coef, inter, gcoef, c1nu, gacc, gql) by position. With ``every > 1`` the block's states
    of the chunk are first recomputed (``rec`` = (seg, state, cb, coef) of the recomputation;
    ``t0`` is then a multiple of ``every``). ``lk``: the lakes, ``lka = (λ_H, dense gradient
    of H, parameter gradients)`` of :func:`_lake_adjoint` (the task adds its own scratch)."""
    order = topo[0]
    cb, coef, inter, gcoef, gacc, gql = work[0], work[1], work[2], work[3], work[5], work[6]
    lo, hi = plan[0][b], plan[0][b + 1]
    n_t = qlat.shape[0] * substeps
    want_ql = gqlat.shape[0] > 0
    n_h = SUBSTEPS_MAX + 1 if lk[0].size > 0 else 0
    lka_t = (lka[0], lka[1], lka[2], np.empty(n_h, np.float64), np.empty(N_PAR, np.float64))
    states, base, user = traj, 0, traj_user
    if every > 1:
        _recompute(b, t0, t1 - 1, traj, traj_user, every, rec, qlat, substeps, params, prow, dt, leak, lim,
                   topo, plan, bnd, lk)  # fmt: skip
        states, base, user = rec[0], t0, False
    for t in range(t1 - 1, t0 - 1, -1):
        cur, nxt = state[t & 1], state[(t + 1) & 1]
        lam_t, lam_next = lam[t & 1], lam[(t + 1) & 1]
        mode = _refresh_mode(-1 if t == n_t - 1 else t + 1, t, prow)
        _backward_physics(cb, coef, inter, cur, lam_t, states, t - base, user, gdense, t, mode,
                          params, prow, dt, leak, lim, order, lo, hi)  # fmt: skip
        _block_observed(b, t, lam_t, obs, gmeans, substeps)
        _load_ghosts(b, t, cur, nxt, bnd, plan)
        _adjoint_sweep(b, t, want_ql, cur, nxt, qlat, substeps, work, lam_t, lam_next, topo,
                       plan, adj, leak, lim[LIM_QMIN], dt, lk, lka_t)  # fmt: skip
        _backward_vjp(cb, coef, inter, gcoef, cur, lam_t, gacc, gparams, t, prow, dt, leak, lim,
                      order, lo, hi)  # fmt: skip
        r = t // substeps
        if want_ql and r > 0 and t % substeps == 0:
            for k in range(lo, hi):
                gqlat[r, order[k]] = gql[k]
                gql[k] = 0.0


@njit(error_model="numpy")
def init_backward(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    gdense: np.ndarray, gmeans: np.ndarray, obs_pos: np.ndarray, gfinal: np.ndarray,
    traj: np.ndarray, traj_user: bool, n_t: int, substeps: int, order: np.ndarray,
    state: np.ndarray, lam: np.ndarray,
) -> None:  # fmt: skip
    """λ_T (the output gradients of the final state) and Q_T into row T mod 2 of ``lam`` and
    ``state``."""
    lam_t, row = lam[n_t & 1], state[n_t & 1]
    g_rows = gdense.shape[0]
    last = traj.shape[0] - 1
    for k in range(order.size):
        i = order[k]
        lam_t[k] = 0.0
        if g_rows > 0:
            lam_t[k] = gdense[n_t if g_rows > 1 else 0, i]
        if gfinal.size > 0:
            lam_t[k] += gfinal[i]
        row[k] = traj[last, i if traj_user else k]
    if gmeans.shape[0] > 0:
        for j in range(obs_pos.size):
            lam_t[obs_pos[j]] += gmeans[gmeans.shape[0] - 1, j] / substeps


@njit(error_model="numpy")
def finish_backward(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    lam0: np.ndarray, gacc: np.ndarray, gql: np.ndarray, qlat: np.ndarray, q0: np.ndarray,
    hot: bool, prow: np.ndarray, qmin: float, order: np.ndarray, down: np.ndarray,
    gqlat: np.ndarray, gparams: tuple, gq0: np.ndarray, lake_of: np.ndarray,
) -> None:  # fmt: skip
    """Static parameter gradients, dL/dq0 (given state) or the hot start's adjoint onto the
    first row of Q′, then that row of ``gqlat``; ``lam0`` = dL/dQ_0 by position."""
    n_r = order.size
    want_ql = gqlat.shape[0] > 0
    for p in range(prow.size):
        if prow[p] == 0 and gparams[p].shape[0] > 0:
            for k in range(n_r):
                gparams[p][0, order[k]] = gacc[k, p]
    if hot:
        if want_ql:
            acc = hot_start(qlat[0], order, down)
            gacc0 = np.zeros(n_r, np.float64)
            for k in range(n_r - 1, -1, -1):
                g = lam0[k] if acc[k] >= qmin else 0.0
                if down[k] >= 0:
                    g += gacc0[down[k]]
                gacc0[k] = g
                gql[k] += g
    else:
        lakes = lake_of.size > 0
        for k in range(n_r):
            i = order[k]
            gq0[i] = lam0[k] if q0[i] >= qmin or (lakes and lake_of[k] >= 0) else 0.0
    if want_ql:
        for k in range(n_r):
            gqlat[0, order[k]] = gql[k]
