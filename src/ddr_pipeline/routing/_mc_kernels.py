"""Compiled Muskingum–Cunge time loop (forward) and its adjoint (backward).

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
  then the final state T as the last row; ``every = 1`` gives the full (T+1, N) trajectory).
  Optional means of the states at the reaches ``obs_pos`` (topological positions) over each row
  of ``qlat`` go to ``means`` (R, M): mean of Q[r·s+1 … r·s+s] (s = ``substeps``).
* The backward takes the output gradient as any of: dense rows ``gdense`` ((T+1, N), (1, N) for
  one row broadcast over all states, or (0, N) for none), the gradient of the means ``gmeans``
  ((R, M) or (0, M)) and of the final state ``gfinal`` ((N,) or (0,)). With ``every > 1`` it
  recomputes each segment of ``every`` steps from its stored state (one extra forward in total;
  memory O(N·T/every + N·every)) — every value and gradient is bitwise the same as ``every = 1``.
* Gradients are written in the storage dtype: ``gqlat`` (R, N) (or (0, N) when not wanted),
  ``gparams`` (rows, N) per parameter ((0, N) when not wanted), sums over the steps of a row
  accumulated in float64.

The per-reach physics of a step is evaluated for every reach (independent per reach), then the
sequential topological sweep runs. With ``n_chunks > 1`` (compiled with ``parallel=True``) the
per-reach work of a step is split into ``n_chunks`` contiguous position ranges run by numba
threads; the sweep stays sequential, so every value is bitwise identical to ``n_chunks == 1``.
"""

from __future__ import annotations

import numba
import numpy as np

from ddr_pipeline.routing._jit import njit
from ddr_pipeline.routing._physics import (
    LIM_QMIN,
    N_CB,
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
    row: np.ndarray,
) -> None:  # fmt: skip
    if hot:
        acc = hot_start(qlat[0], order, down)
        for k in range(order.size):
            row[k] = max(acc[k], qmin)
    else:
        for k in range(order.size):
            row[k] = max(q0[order[k]], qmin)


@njit(error_model="numpy")
def _refresh_mode(loaded: int, t: int, prow: np.ndarray) -> int:
    """How to bring a constant buffer holding step ``loaded`` (−1 = nothing) to step t:
    0 = keep, 1 = refresh the time-varying columns, 2 = fill everything."""
    if loaded < 0:
        return 2
    return 1 if rows_change(prow, loaded, t) else 0


@njit(error_model="numpy")
def _forward_physics(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, cur: np.ndarray, t: int, mode: int, params: tuple,
    prow: np.ndarray, dt: float, leak: bool, lim: np.ndarray, order: np.ndarray, lo: int, hi: int,
) -> None:  # fmt: skip
    """C1..C4, ζ_raw of positions ``lo:hi`` at step t into ``coef`` (constants refreshed first
    per ``mode``, see :func:`_refresh_mode`)."""
    if mode > 0:
        fill_constants(cb, t, params, prow, lim, order, mode == 2, lo, hi)
    for k in range(lo, hi):
        c1, c2, c3, c4, zr = reach_coefs(cb, k, float(cur[k]), dt, leak, lim)
        coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4] = c1, c2, c3, c4, zr


@njit(error_model="numpy", parallel=True)
def _forward_step(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    t: int, cur: np.ndarray, nxt: np.ndarray, cb: np.ndarray, coef: np.ndarray, loaded: int,
    qlat: np.ndarray, substeps: int, params: tuple, prow: np.ndarray, dt: float, leak: bool,
    lim: np.ndarray, order: np.ndarray, up_ptr: np.ndarray, up_idx: np.ndarray,
    clamp_volume: np.ndarray, dst: np.ndarray, dst_row: int, n_chunks: int,
) -> None:  # fmt: skip
    """Step t: Q_t (``cur``, positions) -> Q_{t+1} (``nxt``); ``cb`` holds the constants of
    step ``loaded``. Adds the floor volume to ``clamp_volume`` (user columns; pass an empty
    array to skip) and stores Q_{t+1} in ``dst[dst_row]`` (user columns) when ``dst_row >= 0``."""
    n_r = cur.size
    qmin = lim[LIM_QMIN]
    mode = _refresh_mode(loaded, t, prow)
    if n_chunks == 1:
        _forward_physics(cb, coef, cur, t, mode, params, prow, dt, leak, lim, order, 0, n_r)
    else:
        for c in numba.prange(n_chunks):
            _forward_physics(cb, coef, cur, t, mode, params, prow, dt, leak, lim, order,
                             c * n_r // n_chunks, (c + 1) * n_r // n_chunks)  # fmt: skip
    track = clamp_volume.size > 0
    store = dst_row >= 0
    r = t // substeps
    for k in range(n_r):
        i = order[k]
        qt = float(cur[k])
        usum, vsum = upstream_sums(cur, nxt, up_ptr, up_idx, k)
        y = _unfloored_update(coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4], qt,
                              float(qlat[r, i]), usum, vsum, leak)[0]  # fmt: skip
        if y < qmin:
            if track:
                clamp_volume[i] += (qmin - y) * dt
            y = qmin
        nxt[k] = y
        if store:
            dst[dst_row, i] = nxt[k]


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


@njit(error_model="numpy", parallel=True)
def mc_forward(  # noqa: PLR0913, PLR0917 (compiled kernel / autograd signature)
    qlat: np.ndarray,
    substeps: int,
    q0: np.ndarray,
    hot: bool,
    params: tuple,
    prow: np.ndarray,
    dt: float,
    leak: bool,
    lim: np.ndarray,
    order: np.ndarray,
    down: np.ndarray,
    up_ptr: np.ndarray,
    up_idx: np.ndarray,
    traj: np.ndarray,
    every: int,
    obs_pos: np.ndarray,
    means: np.ndarray,
    clamp_volume: np.ndarray,
    n_chunks: int,
) -> None:
    """Route ``qlat`` (R, N) over T = R·``substeps`` steps (module docstring: contract).

    Writes the stored states into ``traj`` (:func:`traj_rows` rows, user columns), the interval
    means at ``obs_pos`` into ``means`` ((R, M) float64; M = 0 for none) and the volume (m³)
    added by the Q_min floor per reach into ``clamp_volume``. ``n_chunks``: number of threads for
    the per-reach physics (1 = serial)."""
    n_rows, n_r = qlat.shape
    n_t = n_rows * substeps
    qmin = lim[LIM_QMIN]
    cur = np.empty(n_r, traj.dtype)
    nxt = np.empty(n_r, traj.dtype)
    _initial_row(qlat, q0, hot, qmin, order, down, cur)
    for k in range(n_r):
        traj[0, order[k]] = cur[k]
    cb = np.empty((n_r, N_CB), np.float64)
    coef = np.empty((n_r, 5), np.float64)
    n_obs = obs_pos.size
    macc = np.zeros(n_obs, np.float64)
    for t in range(n_t):
        _forward_step(t, cur, nxt, cb, coef, t - 1, qlat, substeps, params, prow, dt, leak, lim,
                      order, up_ptr, up_idx, clamp_volume, traj, _traj_row(t + 1, n_t, every),
                      n_chunks)  # fmt: skip
        cur, nxt = nxt, cur
        for j in range(n_obs):
            macc[j] += cur[obs_pos[j]]
        if n_obs and (t + 1) % substeps == 0:
            for j in range(n_obs):
                means[t // substeps, j] = macc[j] / substeps
                macc[j] = 0.0


@njit(error_model="numpy")
def _adjoint_sweep(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    t: int, r: int, want_ql: bool, cur: np.ndarray, nxt: np.ndarray, qlat: np.ndarray,
    coef: np.ndarray, lam: np.ndarray, lam_next: np.ndarray, gcoef: np.ndarray, c1nu: np.ndarray,
    gql: np.ndarray, order: np.ndarray, down: np.ndarray, up_ptr: np.ndarray, up_idx: np.ndarray,
    leak: bool, qmin: float,
) -> None:  # fmt: skip
    """Reverse topological sweep of step t (Q′ row r): ν, dL/dQ′ added into ``gql`` (float64,
    user columns, when ``want_ql``), dL/d(C1..C4, ζ_raw) into ``gcoef``, and the direct terms of
    dL/dQ_t into ``lam``."""
    for k in range(cur.size - 1, -1, -1):
        i = order[k]
        mu = lam_next[k]
        dn = down[k]
        if dn >= 0:
            mu += c1nu[dn]
        usum, vsum = upstream_sums(cur, nxt, up_ptr, up_idx, k)
        qt = float(cur[k])
        ql = float(qlat[r, i])
        c1, c2, c3, c4, zr = coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4]
        y, zeta, f = _unfloored_update(c1, c2, c3, c4, zr, qt, ql, usum, vsum, leak)
        if y < qmin or mu == 0.0:
            c1nu[k] = 0.0
            for c in range(5):
                gcoef[k, c] = 0.0
            continue
        c1nu[k] = c1 * mu
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
        if want_ql:
            gql[i] += mu * c4 + g_f
        lam[k] += mu * c3
        gu = mu * c2 + g_f
        for m in range(up_ptr[k], up_ptr[k + 1]):
            lam[up_idx[m]] += gu
        gcoef[k, 0] = mu * vsum
        gcoef[k, 1] = mu * usum
        gcoef[k, 2] = mu * qt
        gcoef[k, 3] = mu * (ql - zeta)
        gcoef[k, 4] = gzr


@njit(error_model="numpy")
def _backward_physics(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, inter: np.ndarray, cur: np.ndarray, lam: np.ndarray,
    states: np.ndarray, srow: int, gdense: np.ndarray, t: int, mode: int, params: tuple,
    prow: np.ndarray, dt: float, leak: bool, lim: np.ndarray, order: np.ndarray, lo: int, hi: int,
) -> None:  # fmt: skip
    """Positions ``lo:hi`` at step t: load Q_t (``states[srow]``) and the dense output gradient
    of Q_t, recompute the physics (coefficients into ``coef``, intermediates into ``inter``)."""
    if mode > 0:
        fill_constants(cb, t, params, prow, lim, order, mode == 2, lo, hi)
    g_rows = gdense.shape[0]
    tg = t if g_rows > 1 else 0
    for k in range(lo, hi):
        cur[k] = states[srow, order[k]]
        lam[k] = gdense[tg, order[k]] if g_rows > 0 else 0.0
        ph = reach_physics(cb, k, float(cur[k]), dt, leak, lim)
        coef[k, 0], coef[k, 1], coef[k, 2] = ph[0], ph[1], ph[2]
        coef[k, 3], coef[k, 4] = ph[3], ph[4]
        inter[k, 0], inter[k, 1], inter[k, 2], inter[k, 3] = ph[5], ph[6], ph[7], ph[8]
        inter[k, 4], inter[k, 5], inter[k, 6], inter[k, 7] = ph[9], ph[10], ph[11], ph[12]
        inter[k, 8], inter[k, 9] = ph[13], ph[14]


@njit(error_model="numpy")
def _backward_vjp(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, inter: np.ndarray, gcoef: np.ndarray, cur: np.ndarray,
    lam: np.ndarray, gacc: np.ndarray, gparams: tuple, t: int, prow: np.ndarray, dt: float,
    leak: bool, lim: np.ndarray, order: np.ndarray, lo: int, hi: int,
) -> None:  # fmt: skip
    """Positions ``lo:hi`` at step t: reverse mode of the physics into ``lam`` (dL/dQ_t) and
    ``gacc``; a time-varying parameter whose row starts at step t gets that row stored into its
    ``gparams`` entry (when wanted, i.e. non-empty), then its accumulator reset."""
    for k in range(lo, hi):
        g1, g2, g3, g4, gzr = gcoef[k, 0], gcoef[k, 1], gcoef[k, 2], gcoef[k, 3], gcoef[k, 4]
        if g1 == 0.0 and g2 == 0.0 and g3 == 0.0 and g4 == 0.0 and gzr == 0.0:
            continue
        ph = (coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4], inter[k, 0],
              inter[k, 1] != 0.0, inter[k, 2], inter[k, 3], inter[k, 4] != 0.0, inter[k, 5],
              inter[k, 6], inter[k, 7], inter[k, 8] != 0.0, inter[k, 9])  # fmt: skip
        r = reach_vjp(cb, k, float(cur[k]), ph, (g1, g2, g3, g4, gzr), dt, leak, lim)
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
    for p in range(prow.size):
        if prow[p] > 0 and t % prow[p] == 0:
            dst = gparams[p]
            want = dst.shape[0] > 0
            row = t // prow[p]
            for k in range(lo, hi):
                if want:
                    dst[row, order[k]] = gacc[k, p]
                gacc[k, p] = 0.0


@njit(error_model="numpy")
def _recompute_segment(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    s0: int, s1: int, traj: np.ndarray, every: int, seg: np.ndarray, cur: np.ndarray,
    nxt: np.ndarray, cb: np.ndarray, coef: np.ndarray, qlat: np.ndarray, substeps: int,
    params: tuple, prow: np.ndarray, dt: float, leak: bool, lim: np.ndarray, order: np.ndarray,
    up_ptr: np.ndarray, up_idx: np.ndarray, n_chunks: int,
) -> None:  # fmt: skip
    """States s0 … s1 into ``seg`` rows 0 … s1 − s0 (user columns), from the stored state s0,
    by the forward's own steps (bitwise the forward's values)."""
    n_r = cur.size
    src = s0 // every
    for k in range(n_r):
        i = order[k]
        seg[0, i] = traj[src, i]
        cur[k] = traj[src, i]
    no_clamp = np.empty(0, np.float64)
    for t in range(s0, s1):
        # constants are filled in full for the first step of a segment (they are not shared
        # with the backward's buffer)
        _forward_step(t, cur, nxt, cb, coef, -1 if t == s0 else t - 1, qlat, substeps, params,
                      prow, dt, leak, lim, order, up_ptr, up_idx, no_clamp, seg, t + 1 - s0,
                      n_chunks)  # fmt: skip
        cur, nxt = nxt, cur


@njit(error_model="numpy", parallel=True)
def mc_backward(  # noqa: PLR0913, PLR0915, PLR0917 (compiled kernel / autograd signature)
    gdense: np.ndarray,
    gmeans: np.ndarray,
    obs_pos: np.ndarray,
    gfinal: np.ndarray,
    traj: np.ndarray,
    every: int,
    qlat: np.ndarray,
    substeps: int,
    q0: np.ndarray,
    hot: bool,
    params: tuple,
    prow: np.ndarray,
    dt: float,
    leak: bool,
    lim: np.ndarray,
    order: np.ndarray,
    down: np.ndarray,
    up_ptr: np.ndarray,
    up_idx: np.ndarray,
    gqlat: np.ndarray,
    gparams: tuple,
    gq0: np.ndarray,
    n_chunks: int,
) -> None:
    """Adjoint of :func:`mc_forward` for the output gradients ``gdense``, ``gmeans`` (at
    ``obs_pos``) and ``gfinal`` (module docstring: contract).

    Writes dL/dqlat into ``gqlat`` ((R, N), every entry; (0, N) when not needed), the parameter
    gradients into ``gparams`` (each (rows, N) like its parameter, or (0, N) when not needed;
    accumulated in float64 by position, a time-varying row stored once its steps are done,
    static rows at the end) and dL/dq0 into ``gq0`` (untouched when ``hot``). ``n_chunks``:
    number of threads for the per-reach physics and its reverse mode (1 = serial).
    """
    n_rows, n_r = qlat.shape
    n_t = n_rows * substeps
    qmin = lim[LIM_QMIN]
    want_ql = gqlat.shape[0] > 0
    n_obs = gmeans.shape[1] if gmeans.shape[0] > 0 else 0
    cb = np.empty((n_r, N_CB), np.float64)
    gacc = np.zeros((n_r, 10), np.float64)  # parameter gradients by position
    gql = np.zeros(n_r if want_ql else 0, np.float64)  # dL/dqlat of the current row
    c1nu = np.zeros(n_r, np.float64)  # C1_{t,k} ν_{t,k} by position
    coef = np.empty((n_r, 5), np.float64)
    inter = np.empty((n_r, 10), np.float64)
    gcoef = np.empty((n_r, 5), np.float64)
    cur = np.empty(n_r, traj.dtype)
    nxt = np.empty(n_r, traj.dtype)
    lam_next = np.zeros(n_r, np.float64)
    lam = np.empty(n_r, np.float64)
    # segment recomputation (every > 1): own buffers, so the backward's constants stay loaded
    seg = np.empty((every if every > 1 else 0, n_r), traj.dtype)
    cur_f = np.empty(n_r if every > 1 else 0, traj.dtype)
    nxt_f = np.empty(n_r if every > 1 else 0, traj.dtype)
    cb_f = np.empty((n_r if every > 1 else 0, N_CB), np.float64)
    coef_f = np.empty((n_r if every > 1 else 0, 5), np.float64)
    last = traj.shape[0] - 1
    g_rows = gdense.shape[0]
    for k in range(n_r):
        i = order[k]
        if g_rows > 0:
            lam_next[k] = gdense[n_t if g_rows > 1 else 0, i]
        if gfinal.size > 0:
            lam_next[k] += gfinal[i]
        nxt[k] = traj[last, i]
    for j in range(n_obs):
        lam_next[obs_pos[j]] += gmeans[n_rows - 1, j] / substeps
    states = traj
    base = 0
    loaded = -1
    for t in range(n_t - 1, -1, -1):
        if every > 1 and (t == n_t - 1 or (t + 1) % every == 0):
            s0 = t - t % every
            _recompute_segment(s0, t, traj, every, seg, cur_f, nxt_f, cb_f, coef_f, qlat,
                               substeps, params, prow, dt, leak, lim, order, up_ptr, up_idx,
                               n_chunks)  # fmt: skip
            states = seg
            base = s0
        mode = _refresh_mode(loaded, t, prow)
        loaded = t
        if n_chunks == 1:
            _backward_physics(cb, coef, inter, cur, lam, states, t - base, gdense, t, mode,
                              params, prow, dt, leak, lim, order, 0, n_r)  # fmt: skip
        else:
            for c in numba.prange(n_chunks):
                _backward_physics(cb, coef, inter, cur, lam, states, t - base, gdense, t, mode,
                                  params, prow, dt, leak, lim, order, c * n_r // n_chunks,
                                  (c + 1) * n_r // n_chunks)  # fmt: skip
        if t > 0:
            for j in range(n_obs):
                lam[obs_pos[j]] += gmeans[(t - 1) // substeps, j] / substeps
        r = t // substeps
        _adjoint_sweep(t, r, want_ql, cur, nxt, qlat, coef, lam, lam_next, gcoef, c1nu, gql,
                       order, down, up_ptr, up_idx, leak, qmin)  # fmt: skip
        if n_chunks == 1:
            _backward_vjp(cb, coef, inter, gcoef, cur, lam, gacc, gparams, t, prow, dt, leak,
                          lim, order, 0, n_r)  # fmt: skip
        else:
            for c in numba.prange(n_chunks):
                _backward_vjp(cb, coef, inter, gcoef, cur, lam, gacc, gparams, t, prow, dt,
                              leak, lim, order, c * n_r // n_chunks,
                              (c + 1) * n_r // n_chunks)  # fmt: skip
        if want_ql and r > 0 and t % substeps == 0:
            for i in range(n_r):
                gqlat[r, i] = gql[i]
                gql[i] = 0.0
        lam_next, lam = lam, lam_next
        cur, nxt = nxt, cur
    for p in range(prow.size):
        if prow[p] == 0 and gparams[p].shape[0] > 0:
            for k in range(n_r):
                gparams[p][0, order[k]] = gacc[k, p]
    # lam_next now holds dL/dQ_0 by position
    if hot:
        if want_ql:
            acc = hot_start(qlat[0], order, down)
            gacc0 = np.zeros(n_r, np.float64)
            for k in range(n_r - 1, -1, -1):
                g = lam_next[k] if acc[k] >= qmin else 0.0
                if down[k] >= 0:
                    g += gacc0[down[k]]
                gacc0[k] = g
                gql[order[k]] += g
    else:
        for k in range(n_r):
            i = order[k]
            gq0[i] = lam_next[k] if q0[i] >= qmin else 0.0
    if want_ql:
        for i in range(n_r):
            gqlat[0, i] = gql[i]
