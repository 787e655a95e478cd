"""Compiled Muskingum–Cunge time loop (forward) and its adjoint (backward).

Arrays are in user column order; ``order`` (topological, user indices) and the upstream CSR
(``up_ptr``, ``up_idx``) drive the sweep. Parameters are 2-D ``(1, N)`` (static) or ``(T, N)``
(row t drives step t -> t+1), in :data:`PARAM_NAMES` order. The forward stores only the state
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
def _time_varying(params: tuple) -> bool:
    tv = False
    for a in numba.literal_unroll(params):
        if a.shape[0] > 1:
            tv = True
    return tv


@numba.njit(cache=True)
def hot_start(qlat0: np.ndarray, order: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Σ of ``qlat0`` over each reach and everything upstream (float64, not floored)."""
    acc = qlat0.astype(np.float64)
    for p in range(order.size):
        i = order[p]
        if down[i] >= 0:
            acc[down[i]] += acc[i]
    return acc


@numba.njit(cache=True)
def mc_forward(
    qlat: np.ndarray,
    q0: np.ndarray,
    hot: bool,
    params: tuple,
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
    by the Q_min floor per reach into ``clamp_volume``."""
    n_t, n_r = qlat.shape
    qmin = lim[LIM_QMIN]
    if hot:
        acc = hot_start(qlat[0], order, down)
        for i in range(n_r):
            out[0, i] = max(acc[i], qmin)
    else:
        for i in range(n_r):
            out[0, i] = max(q0[i], qmin)
    tv = _time_varying(params)
    cb = np.empty((n_r, N_CB), np.float64)
    coef = np.empty((n_r, 5), np.float64)
    inter = np.empty((1, N_IN), np.float64)
    for t in range(n_t):
        if t == 0 or tv:
            fill_constants(cb, t, params, lim)
        physics_step(cb, out[t], dt, leak, lim, coef, inter, False)
        for k in range(n_r):
            i = order[k]
            usum = 0.0
            vsum = 0.0
            for m in range(up_ptr[i], up_ptr[i + 1]):
                j = up_idx[m]
                usum += out[t, j]
                vsum += out[t + 1, j]
            ql = float(qlat[t, i])
            zeta = 0.0
            if leak:
                f = ql + usum
                zeta = min(max(coef[i, 4], -f), f)
            y = coef[i, 0] * vsum + coef[i, 1] * usum + coef[i, 2] * float(out[t, i])
            y += coef[i, 3] * (ql - zeta)
            if y < qmin:
                clamp_volume[i] += (qmin - y) * dt
                y = qmin
            out[t + 1, i] = y


@numba.njit(cache=True)
def mc_backward(
    gout: np.ndarray,
    out: np.ndarray,
    qlat: np.ndarray,
    q0: np.ndarray,
    hot: bool,
    params: tuple,
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
) -> None:
    """Adjoint of :func:`mc_forward` for the output gradient ``gout`` (T+1, N).

    Writes dL/dqlat into ``gqlat`` (T, N), accumulates parameter gradients into ``gparams``
    (float64, shapes of ``params``) and dL/dq0 into ``gq0`` (zero when ``hot``).
    """
    n_t, n_r = qlat.shape
    qmin = lim[LIM_QMIN]
    tv = _time_varying(params)
    cb = np.empty((n_r, N_CB), np.float64)
    coef = np.empty((n_r, 5), np.float64)
    inter = np.empty((n_r, N_IN), np.float64)
    gcoef = np.zeros((n_r, 5), np.float64)
    lam_next = gout[n_t].astype(np.float64)
    lam = np.zeros(n_r, np.float64)
    nu = np.zeros(n_r, np.float64)
    for t in range(n_t - 1, -1, -1):
        if t == n_t - 1 or tv:
            fill_constants(cb, t, params, lim)
        physics_step(cb, out[t], dt, leak, lim, coef, inter, True)
        for i in range(n_r):
            lam[i] = gout[t, i]
        for k in range(n_r - 1, -1, -1):
            i = order[k]
            mu = lam_next[i]
            dn = down[i]
            if dn >= 0:
                mu += coef[dn, 0] * nu[dn]
            usum = 0.0
            vsum = 0.0
            for m in range(up_ptr[i], up_ptr[i + 1]):
                j = up_idx[m]
                usum += out[t, j]
                vsum += out[t + 1, j]
            qt = float(out[t, i])
            ql = float(qlat[t, i])
            zr = coef[i, 4]
            zeta = 0.0
            f = ql + usum
            if leak:
                zeta = min(max(zr, -f), f)
            y = coef[i, 0] * vsum + coef[i, 1] * usum + coef[i, 2] * qt
            y += coef[i, 3] * (ql - zeta)
            if y < qmin or mu == 0.0:
                nu[i] = 0.0
                gqlat[t, i] = 0.0
                gcoef[i, :] = 0.0
                continue
            nu[i] = mu
            gzeta = -mu * coef[i, 3]
            g_f = 0.0
            gzr = 0.0
            if leak:
                if zr > f:
                    g_f = gzeta
                elif zr < -f:
                    g_f = -gzeta
                else:
                    gzr = gzeta
            gqlat[t, i] = mu * coef[i, 3] + g_f
            lam[i] += mu * coef[i, 2]
            gu = mu * coef[i, 1] + g_f
            for m in range(up_ptr[i], up_ptr[i + 1]):
                lam[up_idx[m]] += gu
            gcoef[i, 0] = mu * vsum
            gcoef[i, 1] = mu * usum
            gcoef[i, 2] = mu * qt
            gcoef[i, 3] = mu * (ql - zeta)
            gcoef[i, 4] = gzr
        vjp_step(cb, out[t], inter, gcoef, dt, leak, lim, t, gparams, lam)
        lam_next, lam = lam, lam_next
    # lam_next now holds dL/dQ_0
    if hot:
        acc = hot_start(qlat[0], order, down)
        gacc = np.zeros(n_r, np.float64)
        for k in range(n_r - 1, -1, -1):
            i = order[k]
            g = lam_next[i] if acc[i] >= qmin else 0.0
            if down[i] >= 0:
                g += gacc[down[i]]
            gacc[i] = g
            gqlat[0, i] += g
    else:
        for i in range(n_r):
            gq0[i] = lam_next[i] if q0[i] >= qmin else 0.0
