"""Compiled Muskingum–Cunge time loop (forward) and its adjoint (backward).

Arrays are in user column order; ``order`` (topological, user indices) and the upstream CSR
(``up_ptr``, ``up_idx``) drive the sweep. Parameters come packed in one 2-D array ``pk``: parameter
k (:data:`PARAM_NAMES` order) starts at row ``pstart[k]`` and has one row (static) or T rows
(``ptv[k]``; row t drives step t -> t+1). The forward stores only the state trajectory; the
backward recomputes the per-reach physics from it. In both sweeps the physics of a reach is
evaluated per step for every reach (independent per reach), then the sequential topological sweep
runs. With ``n_chunks > 1`` (compiled with ``parallel=True``) the per-reach work of a step is split
into ``n_chunks`` contiguous position ranges run by numba threads; the sweep stays sequential, so
every value is bitwise identical to ``n_chunks == 1``.
"""

from __future__ import annotations

import numba
import numpy as np

from ddr_pipeline.routing._physics import (
    LIM_QMIN,
    N_CB,
    fill_constants,
    reach_coefs,
    reach_physics,
    reach_vjp,
    upstream_sums,
)


@numba.njit(cache=True, error_model="numpy", inline="always")
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


@numba.njit(cache=True, error_model="numpy")
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


@numba.njit(cache=True, error_model="numpy")
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


@numba.njit(cache=True, error_model="numpy")
def _forward_physics(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, cur: np.ndarray, t: int, refresh: bool, pk: np.ndarray,
    pstart: np.ndarray, ptv: np.ndarray, dt: float, leak: bool, lim: np.ndarray,
    order: np.ndarray, lo: int, hi: int,
) -> None:  # fmt: skip
    """C1..C4, ζ_raw of positions ``lo:hi`` at step t into ``coef`` (constants refreshed first
    when ``refresh``)."""
    if refresh:
        fill_constants(cb, t, pk, pstart, ptv, lim, order, t == 0, lo, hi)
    for k in range(lo, hi):
        c1, c2, c3, c4, zr = reach_coefs(cb, k, float(cur[k]), dt, leak, lim)
        coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4] = c1, c2, c3, c4, zr


@numba.njit(cache=True, error_model="numpy", parallel=True)
def mc_forward(  # noqa: PLR0917 (compiled kernel / autograd signature)
    qlat: np.ndarray,
    q0: np.ndarray,
    hot: bool,
    pk: np.ndarray,
    pstart: np.ndarray,
    ptv: np.ndarray,
    dt: float,
    leak: bool,
    lim: np.ndarray,
    order: np.ndarray,
    down: np.ndarray,
    up_ptr: np.ndarray,
    up_idx: np.ndarray,
    out: np.ndarray,
    clamp_volume: np.ndarray,
    n_chunks: int,
) -> None:
    """Route ``qlat`` (T, N); writes the states (T+1, N) into ``out`` and the volume (m³) added
    by the Q_min floor per reach into ``clamp_volume`` (user columns). ``down``/``up_*`` are in
    topological positions; ``order[k]`` is the user column of position k. ``n_chunks``: number
    of threads for the per-reach physics (1 = serial)."""
    n_t, n_r = qlat.shape
    qmin = lim[LIM_QMIN]
    cur = np.empty(n_r, out.dtype)
    nxt = np.empty(n_r, out.dtype)
    _initial_row(qlat, q0, hot, qmin, order, down, cur)
    for k in range(n_r):
        out[0, order[k]] = cur[k]
    tv = ptv.any()
    cb = np.empty((n_r, N_CB), np.float64)
    coef = np.empty((n_r, 5), np.float64)
    for t in range(n_t):
        refresh = t == 0 or tv
        if n_chunks == 1:
            _forward_physics(cb, coef, cur, t, refresh, pk, pstart, ptv, dt, leak, lim, order,
                             0, n_r)  # fmt: skip
        else:
            for c in numba.prange(n_chunks):
                _forward_physics(cb, coef, cur, t, refresh, pk, pstart, ptv, dt, leak, lim, order,
                                 c * n_r // n_chunks, (c + 1) * n_r // n_chunks)  # fmt: skip
        for k in range(n_r):
            i = order[k]
            qt = float(cur[k])
            usum, vsum = upstream_sums(cur, nxt, up_ptr, up_idx, k)
            y = _unfloored_update(coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4], qt,
                                  float(qlat[t, i]), usum, vsum, leak)[0]  # fmt: skip
            if y < qmin:
                clamp_volume[i] += (qmin - y) * dt
                y = qmin
            nxt[k] = y
            out[t + 1, i] = nxt[k]
        cur, nxt = nxt, cur


@numba.njit(cache=True, error_model="numpy")
def _adjoint_sweep(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    t: int, want_ql: bool, cur: np.ndarray, nxt: np.ndarray, qlat: np.ndarray,
    coef: np.ndarray, lam: np.ndarray, lam_next: np.ndarray, gcoef: np.ndarray, c1nu: np.ndarray,
    gqlat: np.ndarray, g0row: np.ndarray, order: np.ndarray, down: np.ndarray, up_ptr: np.ndarray,
    up_idx: np.ndarray, leak: bool, qmin: float,
) -> None:  # fmt: skip
    """Reverse topological sweep of step t: ν, dL/dQ′ (row 0 into ``g0row``), dL/d(C1..C4, ζ_raw)
    into ``gcoef``, and the direct terms of dL/dQ_t into ``lam``."""
    for k in range(cur.size - 1, -1, -1):
        i = order[k]
        mu = lam_next[k]
        dn = down[k]
        if dn >= 0:
            mu += c1nu[dn]
        usum, vsum = upstream_sums(cur, nxt, up_ptr, up_idx, k)
        qt = float(cur[k])
        ql = float(qlat[t, i])
        c1, c2, c3, c4, zr = coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3], coef[k, 4]
        y, zeta, f = _unfloored_update(c1, c2, c3, c4, zr, qt, ql, usum, vsum, leak)
        if y < qmin or mu == 0.0:
            c1nu[k] = 0.0
            if t == 0:
                g0row[i] = 0.0
            elif want_ql:
                gqlat[t, i] = 0.0
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
        if t == 0:
            g0row[i] = mu * c4 + g_f
        elif want_ql:
            gqlat[t, i] = mu * c4 + g_f
        lam[k] += mu * c3
        gu = mu * c2 + g_f
        for m in range(up_ptr[k], up_ptr[k + 1]):
            lam[up_idx[m]] += gu
        gcoef[k, 0] = mu * vsum
        gcoef[k, 1] = mu * usum
        gcoef[k, 2] = mu * qt
        gcoef[k, 3] = mu * (ql - zeta)
        gcoef[k, 4] = gzr


@numba.njit(cache=True, error_model="numpy")
def _backward_physics(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, inter: np.ndarray, cur: np.ndarray, lam: np.ndarray,
    out: np.ndarray, gout: np.ndarray, t: int, tg: int, refresh: bool, n_t: int, pk: np.ndarray,
    pstart: np.ndarray, ptv: np.ndarray, dt: float, leak: bool, lim: np.ndarray,
    order: np.ndarray, lo: int, hi: int,
) -> None:  # fmt: skip
    """Positions ``lo:hi`` at step t: load Q_t and the direct output gradient, recompute the
    physics (coefficients into ``coef``, intermediates into ``inter``)."""
    if refresh:
        fill_constants(cb, t, pk, pstart, ptv, lim, order, t == n_t - 1, lo, hi)
    for k in range(lo, hi):
        cur[k] = out[t, order[k]]
        lam[k] = gout[tg, order[k]]
        ph = reach_physics(cb, k, float(cur[k]), dt, leak, lim)
        coef[k, 0], coef[k, 1], coef[k, 2] = ph[0], ph[1], ph[2]
        coef[k, 3], coef[k, 4] = ph[3], ph[4]
        inter[k, 0], inter[k, 1], inter[k, 2], inter[k, 3] = ph[5], ph[6], ph[7], ph[8]
        inter[k, 4], inter[k, 5], inter[k, 6], inter[k, 7] = ph[9], ph[10], ph[11], ph[12]
        inter[k, 8], inter[k, 9] = ph[13], ph[14]


@numba.njit(cache=True, error_model="numpy")
def _backward_vjp(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray, coef: np.ndarray, inter: np.ndarray, gcoef: np.ndarray, cur: np.ndarray,
    lam: np.ndarray, gacc: np.ndarray, gpk: np.ndarray, t: int, pstart: np.ndarray,
    ptv: np.ndarray, dt: float, leak: bool, lim: np.ndarray, order: np.ndarray, lo: int, hi: int,
) -> None:  # fmt: skip
    """Positions ``lo:hi`` at step t: reverse mode of the physics into ``lam`` (dL/dQ_t) and
    ``gacc``; time-varying parameter rows of this step stored into ``gpk`` (then reset)."""
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
    for p in range(ptv.size):
        if ptv[p]:
            row = pstart[p] + t
            for k in range(lo, hi):
                gpk[row, order[k]] = gacc[k, p]
                gacc[k, p] = 0.0


@numba.njit(cache=True, error_model="numpy", parallel=True)
def mc_backward(  # noqa: PLR0917 (compiled kernel / autograd signature)
    gout: np.ndarray,
    out: np.ndarray,
    qlat: np.ndarray,
    q0: np.ndarray,
    hot: bool,
    pk: np.ndarray,
    pstart: np.ndarray,
    ptv: np.ndarray,
    dt: float,
    leak: bool,
    lim: np.ndarray,
    order: np.ndarray,
    down: np.ndarray,
    up_ptr: np.ndarray,
    up_idx: np.ndarray,
    gqlat: np.ndarray,
    gpk: np.ndarray,
    gq0: np.ndarray,
    n_chunks: int,
) -> None:
    """Adjoint of :func:`mc_forward` for the output gradient ``gout`` ((T+1, N), or (1, N) when
    the same row applies to every step).

    Writes dL/dqlat into ``gqlat`` ((T, N), every entry; pass a (1, N) array when it is not
    needed), the parameter gradients into ``gpk`` (zero-initialised, packed like ``pk``, any float
    dtype: accumulated in float64 by position, a time-varying row stored after its step, static
    rows at the end) and dL/dq0 into ``gq0`` (untouched when ``hot``). ``n_chunks``: number of
    threads for the per-reach physics and its reverse mode (1 = serial).
    """
    n_t, n_r = qlat.shape
    qmin = lim[LIM_QMIN]
    tv = ptv.any()
    want_ql = gqlat.shape[0] == n_t
    g_rows = gout.shape[0] > 1
    cb = np.empty((n_r, N_CB), np.float64)
    n_p = ptv.size
    gacc = np.zeros((n_r, n_p), np.float64)  # parameter gradients by position
    g0row = np.zeros(n_r, np.float64)  # dL/dqlat[0] in float64 (the hot start adds to it)
    c1nu = np.zeros(n_r, np.float64)  # C1_{t,k} ν_{t,k} by position
    coef = np.empty((n_r, 5), np.float64)
    inter = np.empty((n_r, 10), np.float64)
    gcoef = np.empty((n_r, 5), np.float64)
    cur = np.empty(n_r, out.dtype)
    nxt = np.empty(n_r, out.dtype)
    lam_next = np.empty(n_r, np.float64)
    lam = np.empty(n_r, np.float64)
    for k in range(n_r):
        lam_next[k] = gout[n_t if g_rows else 0, order[k]]
        nxt[k] = out[n_t, order[k]]
    for t in range(n_t - 1, -1, -1):
        refresh = t == n_t - 1 or tv
        tg = t if g_rows else 0
        if n_chunks == 1:
            _backward_physics(cb, coef, inter, cur, lam, out, gout, t, tg, refresh, n_t, pk,
                              pstart, ptv, dt, leak, lim, order, 0, n_r)  # fmt: skip
        else:
            for c in numba.prange(n_chunks):
                _backward_physics(cb, coef, inter, cur, lam, out, gout, t, tg, refresh, n_t, pk,
                                  pstart, ptv, dt, leak, lim, order, c * n_r // n_chunks,
                                  (c + 1) * n_r // n_chunks)  # fmt: skip
        _adjoint_sweep(t, want_ql, cur, nxt, qlat, coef, lam, lam_next, gcoef, c1nu, gqlat,
                       g0row, order, down, up_ptr, up_idx, leak, qmin)  # fmt: skip
        if n_chunks == 1:
            _backward_vjp(cb, coef, inter, gcoef, cur, lam, gacc, gpk, t, pstart, ptv, dt, leak,
                          lim, order, 0, n_r)  # fmt: skip
        else:
            for c in numba.prange(n_chunks):
                _backward_vjp(cb, coef, inter, gcoef, cur, lam, gacc, gpk, t, pstart, ptv, dt,
                              leak, lim, order, c * n_r // n_chunks,
                              (c + 1) * n_r // n_chunks)  # fmt: skip
        lam_next, lam = lam, lam_next
        cur, nxt = nxt, cur
    for p in range(n_p):
        if not ptv[p]:
            for k in range(n_r):
                gpk[pstart[p], order[k]] = gacc[k, p]
    # lam_next now holds dL/dQ_0 by position
    if hot:
        acc = hot_start(qlat[0], order, down)
        gacc0 = np.zeros(n_r, np.float64)
        for k in range(n_r - 1, -1, -1):
            g = lam_next[k] if acc[k] >= qmin else 0.0
            if down[k] >= 0:
                g += gacc0[down[k]]
            gacc0[k] = g
            g0row[order[k]] += g
    else:
        for k in range(n_r):
            i = order[k]
            gq0[i] = lam_next[k] if q0[i] >= qmin else 0.0
    if want_ql:
        for i in range(n_r):
            gqlat[0, i] = g0row[i]
