"""Compiled fixed-coefficient Muskingum (RAPID mode): sub-stepped forward and its adjoint."""

from __future__ import annotations

import numpy as np

from ddr_pipeline.routing._jit import njit
from ddr_pipeline.routing._physics import upstream_sums


@njit()
def coefficients(k: np.ndarray, x: np.ndarray, dt: float) -> np.ndarray:
    """(N, 4) C1..C4 (float64) from K (s) and X per reach."""
    c = np.empty((k.size, 4), np.float64)
    for i in range(k.size):
        u = 2.0 * float(k[i])
        xx = float(x[i])
        den = u * (1.0 - xx) + dt
        c[i, 0] = (dt - u * xx) / den
        c[i, 1] = (dt + u * xx) / den
        c[i, 2] = (u * (1.0 - xx) - dt) / den
        c[i, 3] = 2.0 * dt / den
    return c


@njit()
def fixed_forward(  # noqa: PLR0917 (compiled kernel / autograd signature)
    qext: np.ndarray,
    q0: np.ndarray,
    coef: np.ndarray,
    substeps: int,
    order: np.ndarray,
    up_ptr: np.ndarray,
    up_idx: np.ndarray,
    out: np.ndarray,
) -> None:
    """States at every sub-step into ``out`` (T_in·substeps + 1, N); Q′ constant per interval."""
    n_in, n_r = qext.shape
    for i in range(n_r):
        out[0, i] = q0[i]
    for s in range(n_in * substeps):
        t = s // substeps
        prev, new = out[s], out[s + 1]
        for kk in range(n_r):
            i = order[kk]
            usum, vsum = upstream_sums(prev, new, up_ptr, up_idx, i)
            out[s + 1, i] = (
                coef[i, 0] * vsum + coef[i, 1] * usum + coef[i, 2] * float(out[s, i])
                + coef[i, 3] * float(qext[t, i])
            )  # fmt: skip


@njit()
def fixed_backward(  # noqa: PLR0917 (compiled kernel / autograd signature)
    gout: np.ndarray,
    out: np.ndarray,
    qext: np.ndarray,
    coef: np.ndarray,
    substeps: int,
    order: np.ndarray,
    down: np.ndarray,
    up_ptr: np.ndarray,
    up_idx: np.ndarray,
    gqext: np.ndarray,
    gcoef: np.ndarray,
) -> np.ndarray:
    """Adjoint of :func:`fixed_forward`; fills ``gqext`` and ``gcoef`` (N, 4), returns dL/dq0."""
    n_in, n_r = qext.shape
    lam_next = gout[n_in * substeps].astype(np.float64)
    lam = np.zeros(n_r, np.float64)
    nu = np.zeros(n_r, np.float64)
    for s in range(n_in * substeps - 1, -1, -1):
        t = s // substeps
        prev, new = out[s], out[s + 1]
        for i in range(n_r):
            lam[i] = gout[s, i]
        for kk in range(n_r - 1, -1, -1):
            i = order[kk]
            mu = lam_next[i]
            if down[i] >= 0:
                mu += coef[down[i], 0] * nu[down[i]]
            nu[i] = mu
            usum, vsum = upstream_sums(prev, new, up_ptr, up_idx, i)
            for m in range(up_ptr[i], up_ptr[i + 1]):
                lam[up_idx[m]] += mu * coef[i, 1]
            lam[i] += mu * coef[i, 2]
            gcoef[i, 0] += mu * vsum
            gcoef[i, 1] += mu * usum
            gcoef[i, 2] += mu * out[s, i]
            gcoef[i, 3] += mu * qext[t, i]
            gqext[t, i] += mu * coef[i, 3]
        lam_next, lam = lam, lam_next
    return lam_next


@njit()
def coefficients_vjp(
    k: np.ndarray, x: np.ndarray, dt: float, gcoef: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients with respect to K and X from gradients with respect to C1..C4."""
    gk = np.empty(k.size, np.float64)
    gx = np.empty(k.size, np.float64)
    for i in range(k.size):
        u = 2.0 * float(k[i])
        xx = float(x[i])
        den = u * (1.0 - xx) + dt
        den2 = den * den
        g1, g2, g3, g4 = gcoef[i, 0], gcoef[i, 1], gcoef[i, 2], gcoef[i, 3]
        gu = dt / den2 * (-g1 + (2.0 * xx - 1.0) * g2 + 2.0 * (1.0 - xx) * (g3 - g4))
        gk[i] = 2.0 * gu
        gx[i] = u / den2 * (-u * g1 + (u + 2.0 * dt) * g2 + 2.0 * dt * (g4 - g3))
    return gk, gx
