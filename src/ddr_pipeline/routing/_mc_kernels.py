"""Compiled Muskingum–Cunge time loop (forward) and its adjoint (backward).

Arrays are in user column order; ``order`` (topological, user indices) and the upstream CSR
(``up_ptr``, ``up_idx``) drive the sweep. Parameters come packed in one 2-D array ``pk``: parameter k (:data:`PARAM_NAMES`
order) starts at row ``pstart[k]`` and has one row (static) or T rows (``ptv[k]``; row t drives step
t -> t+1). The forward stores only the state
trajectory; the backward recomputes the per-reach physics from it.
"""

from __future__ import annotations

import numba
import numpy as np

from ddr_pipeline.routing._physics import (
    LIM_QMIN,
    N_CB,
    N_IN,
    fill_constants,
    physics_step,
    vjp_step,
)


@numba.njit(cache=True)
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


@numba.njit(cache=True)
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


@numba.njit(cache=True)
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
) -> None:
    """Route ``qlat`` (T, N); writes the states (T+1, N) into ``out`` and the volume (m³) added
    by the Q_min floor per reach into ``clamp_volume`` (user columns). ``down``/``up_*`` are in
    topological positions; ``order[k]`` is the user column of position k."""
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
    inter = np.empty((1, N_IN), np.float64)
    for t in range(n_t):
        if t == 0 or tv:
            fill_constants(cb, t, pk, pstart, ptv, lim, order)
        physics_step(cb, cur, dt, leak, lim, coef, inter, False)
        for k in range(n_r):
            i = order[k]
            usum = 0.0
            vsum = 0.0
            for m in range(up_ptr[k], up_ptr[k + 1]):
                j = up_idx[m]
                usum += cur[j]
                vsum += nxt[j]
            ql = float(qlat[t, i])
            zeta = 0.0
            if leak:
                f = ql + usum
                zeta = min(max(coef[k, 4], -f), f)
            y = coef[k, 0] * vsum + coef[k, 1] * usum + coef[k, 2] * float(cur[k])
            y += coef[k, 3] * (ql - zeta)
            if y < qmin:
                clamp_volume[i] += (qmin - y) * dt
                y = qmin
            nxt[k] = y
            out[t + 1, i] = nxt[k]
        cur, nxt = nxt, cur


@numba.njit(cache=True)
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
) -> None:
    """Adjoint of :func:`mc_forward` for the output gradient ``gout`` (T+1, N).

    Writes dL/dqlat into ``gqlat`` (T, N), accumulates parameter gradients into ``gpk``
    (float64, packed like ``pk``) and dL/dq0 into ``gq0`` (zero when ``hot``).
    """
    n_t, n_r = qlat.shape
    qmin = lim[LIM_QMIN]
    tv = ptv.any()
    cb = np.empty((n_r, N_CB), np.float64)
    coef = np.empty((n_r, 5), np.float64)
    inter = np.empty((n_r, N_IN), np.float64)
    gcoef = np.zeros((n_r, 5), np.float64)
    cur = np.empty(n_r, out.dtype)
    nxt = np.empty(n_r, out.dtype)
    lam_next = np.empty(n_r, np.float64)
    lam = np.empty(n_r, np.float64)
    nu = np.zeros(n_r, np.float64)
    for k in range(n_r):
        lam_next[k] = gout[n_t, order[k]]
        nxt[k] = out[n_t, order[k]]
    for t in range(n_t - 1, -1, -1):
        if t == n_t - 1 or tv:
            fill_constants(cb, t, pk, pstart, ptv, lim, order)
        for k in range(n_r):
            cur[k] = out[t, order[k]]
            lam[k] = gout[t, order[k]]
        physics_step(cb, cur, dt, leak, lim, coef, inter, True)
        for k in range(n_r - 1, -1, -1):
            i = order[k]
            mu = lam_next[k]
            dn = down[k]
            if dn >= 0:
                mu += coef[dn, 0] * nu[dn]
            usum = 0.0
            vsum = 0.0
            for m in range(up_ptr[k], up_ptr[k + 1]):
                j = up_idx[m]
                usum += cur[j]
                vsum += nxt[j]
            qt = float(cur[k])
            ql = float(qlat[t, i])
            zr = coef[k, 4]
            zeta = 0.0
            f = ql + usum
            if leak:
                zeta = min(max(zr, -f), f)
            y = coef[k, 0] * vsum + coef[k, 1] * usum + coef[k, 2] * qt
            y += coef[k, 3] * (ql - zeta)
            if y < qmin or mu == 0.0:
                nu[k] = 0.0
                gqlat[t, i] = 0.0
                for c in range(5):
                    gcoef[k, c] = 0.0
                continue
            nu[k] = mu
            gzeta = -mu * coef[k, 3]
            g_f = 0.0
            gzr = 0.0
            if leak:
                if zr > f:
                    g_f = gzeta
                elif zr < -f:
                    g_f = -gzeta
                else:
                    gzr = gzeta
            gqlat[t, i] = mu * coef[k, 3] + g_f
            lam[k] += mu * coef[k, 2]
            gu = mu * coef[k, 1] + g_f
            for m in range(up_ptr[k], up_ptr[k + 1]):
                lam[up_idx[m]] += gu
            gcoef[k, 0] = mu * vsum
            gcoef[k, 1] = mu * usum
            gcoef[k, 2] = mu * qt
            gcoef[k, 3] = mu * (ql - zeta)
            gcoef[k, 4] = gzr
        vjp_step(cb, cur, inter, gcoef, dt, leak, lim, t, gpk, pstart, ptv, lam, order)
        lam_next, lam = lam, lam_next
        cur, nxt = nxt, cur
    # lam_next now holds dL/dQ_0 by position
    if hot:
        acc = hot_start(qlat[0], order, down)
        gacc = np.zeros(n_r, np.float64)
        for k in range(n_r - 1, -1, -1):
            g = lam_next[k] if acc[k] >= qmin else 0.0
            if down[k] >= 0:
                g += gacc[down[k]]
            gacc[k] = g
            gqlat[0, order[k]] += g
    else:
        for k in range(n_r):
            i = order[k]
            gq0[i] = lam_next[k] if q0[i] >= qmin else 0.0
