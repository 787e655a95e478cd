"""Muskingum–Cunge physics (routing-physics.md §3) per step, and its hand-written reverse mode.

Numba functions used by the compiled kernels; arithmetic is float64 whatever the storage dtype.
Per reach and parameter row, :func:`fill_constants` caches the values that do not depend on the state
(``CB_*`` columns). For one step, :func:`physics_step` evaluates C1..C4 and the raw exchange ζ for
every reach from the states Q_t (optionally keeping the intermediates), and :func:`vjp_step`
back-propagates gradients with respect to C1..C4 and ζ_raw to Q_t and to every raw parameter. Both
loop over reaches independently (``prange``). Clamps pass the gradient where the value lies inside
the bounds, bounds included (``torch.clamp`` semantics), and zero it outside.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# columns of the per-reach constant buffer
CB_L, CB_X, CB_N, CB_W, CB_Z, CB_S, CB_E, CB_LOGC, CB_R, CB_HB, CB_KD, CB_DGW = range(12)
CB_Q, CB_P, CB_S0, CB_HBRAW = range(12, 16)
N_CB = 16

# columns of the intermediate buffer kept for the reverse mode
IN_D, IN_DCL, IN_LB, IN_B, IN_BCL, IN_AREA, IN_PERIM, IN_RAD, IN_V, IN_VCL, IN_CEL = range(11)
N_IN = 11

# entries of the limits vector
LIM_QMIN, LIM_DMIN, LIM_BMIN, LIM_VMIN, LIM_VMAX, LIM_SMIN, LIM_HBMIN, LIM_HBMAX = range(8)

# order of the parameter arrays passed to the kernels
PARAM_NAMES = (
    "length",
    "slope",
    "x",
    "n",
    "q_spatial",
    "p",
    "top_width",
    "side_slope",
    "K_D",
    "d_gw",
)

_TWO_THIRDS = 2.0 / 3.0
_FIVE_THIRDS = 5.0 / 3.0


@numba.njit(cache=True, inline="always")
def row_of(pstart: np.ndarray, ptv: np.ndarray, k: int, t: int) -> int:
    """Row of parameter k (PARAM_NAMES order) in the packed array that drives step t."""
    return pstart[k] + t if ptv[k] else pstart[k]


@numba.njit(cache=True)
def fill_constants(  # noqa: PLR0917 (compiled kernel / autograd signature)
    cb: np.ndarray, t: int, pk: np.ndarray, pstart: np.ndarray, ptv: np.ndarray, lim: np.ndarray,
    order: np.ndarray,
) -> None:  # fmt: skip
    """Fill the (N, N_CB) constant buffer (topological positions) from the packed parameters
    ``pk`` (rows of parameter k start at ``pstart[k]``; ``ptv[k]``: one row per step)."""
    rl, rs, rx = row_of(pstart, ptv, 0, t), row_of(pstart, ptv, 1, t), row_of(pstart, ptv, 2, t)
    rn, rq, rp = row_of(pstart, ptv, 3, t), row_of(pstart, ptv, 4, t), row_of(pstart, ptv, 5, t)
    rw, rz, rk = row_of(pstart, ptv, 6, t), row_of(pstart, ptv, 7, t), row_of(pstart, ptv, 8, t)
    rg = row_of(pstart, ptv, 9, t)
    for k in range(cb.shape[0]):
        i = order[k]
        s0 = float(pk[rs, i])
        sq = math.sqrt(max(s0, lim[LIM_SMIN]))
        nn = float(pk[rn, i])
        q = float(pk[rq, i])
        pp = float(pk[rp, i])
        w = float(pk[rw, i])
        z = float(pk[rz, i])
        hbraw = w / (2.0 * z)
        cb[k, CB_L] = pk[rl, i]
        cb[k, CB_X] = pk[rx, i]
        cb[k, CB_N] = nn
        cb[k, CB_W] = w
        cb[k, CB_Z] = z
        cb[k, CB_S] = sq
        cb[k, CB_E] = 3.0 / (5.0 + 3.0 * q)
        cb[k, CB_LOGC] = math.log(nn * (q + 1.0) / (pp * sq))
        cb[k, CB_R] = math.sqrt(1.0 + z * z)
        cb[k, CB_HB] = min(max(hbraw, lim[LIM_HBMIN]), lim[LIM_HBMAX])
        cb[k, CB_KD] = pk[rk, i]
        cb[k, CB_DGW] = pk[rg, i]
        cb[k, CB_Q] = q
        cb[k, CB_P] = pp
        cb[k, CB_S0] = s0
        cb[k, CB_HBRAW] = hbraw


@numba.njit(cache=True, parallel=False)
def physics_step(  # noqa: PLR0917 (compiled kernel / autograd signature)
    cb: np.ndarray,
    qrow: np.ndarray,
    dt: float,
    leak: bool,
    lim: np.ndarray,
    coef: np.ndarray,
    inter: np.ndarray,
    keep: bool,
) -> None:
    """C1..C4 and ζ_raw of every reach into ``coef`` (N, 5); intermediates into ``inter`` if keep."""
    dmin, bmin, vmin, vmax = lim[LIM_DMIN], lim[LIM_BMIN], lim[LIM_VMIN], lim[LIM_VMAX]
    for i in range(qrow.size):
        qt = float(qrow[i])
        lb = math.log(qt) + cb[i, CB_LOGC]
        d = math.exp(cb[i, CB_E] * lb)
        dcl = d < dmin
        if dcl:
            d = dmin
        w = cb[i, CB_W]
        b = w - 2.0 * cb[i, CB_Z] * d
        bcl = b < bmin
        if bcl:
            b = bmin
        area = 0.5 * (w + b) * d
        perim = b + 2.0 * d * cb[i, CB_R]
        rad = area / perim
        v = math.exp(_TWO_THIRDS * math.log(rad)) * cb[i, CB_S] / cb[i, CB_N]
        vcl = v < vmin or v > vmax
        cel = _FIVE_THIRDS * min(max(v, vmin), vmax)
        u = 2.0 * cb[i, CB_L] / cel  # 2K
        xx = cb[i, CB_X]
        den = u * (1.0 - xx) + dt
        coef[i, 0] = (dt - u * xx) / den
        coef[i, 1] = (dt + u * xx) / den
        coef[i, 2] = (u * (1.0 - xx) - dt) / den
        coef[i, 3] = 2.0 * dt / den
        coef[i, 4] = (
            cb[i, CB_KD] * w * cb[i, CB_L] * (d - cb[i, CB_HB] + cb[i, CB_DGW]) if leak else 0.0
        )
        if keep:
            inter[i, IN_D] = d
            inter[i, IN_DCL] = 1.0 if dcl else 0.0
            inter[i, IN_LB] = lb
            inter[i, IN_B] = b
            inter[i, IN_BCL] = 1.0 if bcl else 0.0
            inter[i, IN_AREA] = area
            inter[i, IN_PERIM] = perim
            inter[i, IN_RAD] = rad
            inter[i, IN_V] = v
            inter[i, IN_VCL] = 1.0 if vcl else 0.0
            inter[i, IN_CEL] = cel


@numba.njit(cache=True, parallel=False)
def vjp_step(  # noqa: PLR0917 (compiled kernel / autograd signature)
    cb: np.ndarray,
    qrow: np.ndarray,
    inter: np.ndarray,
    gcoef: np.ndarray,
    dt: float,
    leak: bool,
    lim: np.ndarray,
    t: int,
    gpk: np.ndarray,
    pstart: np.ndarray,
    ptv: np.ndarray,
    gstate: np.ndarray,
    order: np.ndarray,
) -> None:
    """Back-propagate ``gcoef`` (N, 5: dL/dC1..C4, dL/dζ_raw) through the physics of step t.

    Rows of the buffers are topological positions. Adds dL/dQ_t to ``gstate`` (positions) and the
    parameter gradients to ``gpk`` (packed like the parameters, user columns ``order[k]``).
    """
    rl, rs, rx = row_of(pstart, ptv, 0, t), row_of(pstart, ptv, 1, t), row_of(pstart, ptv, 2, t)
    rn, rq, rp = row_of(pstart, ptv, 3, t), row_of(pstart, ptv, 4, t), row_of(pstart, ptv, 5, t)
    rw, rz, rk = row_of(pstart, ptv, 6, t), row_of(pstart, ptv, 7, t), row_of(pstart, ptv, 8, t)
    rg = row_of(pstart, ptv, 9, t)
    for i in range(qrow.size):
        g1, g2, g3, g4, gzr = gcoef[i, 0], gcoef[i, 1], gcoef[i, 2], gcoef[i, 3], gcoef[i, 4]
        if g1 == 0.0 and g2 == 0.0 and g3 == 0.0 and g4 == 0.0 and gzr == 0.0:
            continue
        w, z, r, nn, s = cb[i, CB_W], cb[i, CB_Z], cb[i, CB_R], cb[i, CB_N], cb[i, CB_S]
        length, xx = cb[i, CB_L], cb[i, CB_X]
        d, b = inter[i, IN_D], inter[i, IN_B]
        perim, rad, v, cel = inter[i, IN_PERIM], inter[i, IN_RAD], inter[i, IN_V], inter[i, IN_CEL]
        k = length / cel
        u = 2.0 * k
        den = u * (1.0 - xx) + dt
        den2 = den * den
        gu = dt / den2 * (-g1 + (2.0 * xx - 1.0) * g2 + 2.0 * (1.0 - xx) * (g3 - g4))
        gx = u / den2 * (-u * g1 + (u + 2.0 * dt) * g2 + 2.0 * dt * (g4 - g3))
        gk = 2.0 * gu
        gl = gk / cel
        gv = 0.0 if inter[i, IN_VCL] != 0.0 else -_FIVE_THIRDS * gk * k / cel
        grad_r = gv * _TWO_THIRDS * v / rad
        gs = gv * v / s
        gn = -gv * v / nn
        ga = grad_r / perim
        gperim = -grad_r * rad / perim
        gb = gperim + 0.5 * d * ga
        gd = 2.0 * r * gperim + 0.5 * (w + b) * ga
        gz = 2.0 * d * gperim * z / r
        gw = 0.5 * d * ga
        if inter[i, IN_BCL] == 0.0:
            gw += gb
            gz -= 2.0 * d * gb
            gd -= 2.0 * z * gb
        gkd = 0.0
        gdgw = 0.0
        if leak:
            kd = cb[i, CB_KD]
            kdwl = kd * w * length
            gkdwl = gzr * (d - cb[i, CB_HB] + cb[i, CB_DGW])
            gd += gzr * kdwl
            gdgw = gzr * kdwl
            gkd = gkdwl * w * length
            gw += gkdwl * kd * length
            gl += gkdwl * kd * w
            hbraw = cb[i, CB_HBRAW]
            if lim[LIM_HBMIN] <= hbraw <= lim[LIM_HBMAX]:
                ghb = -gzr * kdwl
                gw += ghb / (2.0 * z)
                gz -= ghb * hbraw / z
        gq = 0.0
        gpw = 0.0
        if inter[i, IN_DCL] == 0.0:
            e = cb[i, CB_E]
            gde = gd * d * e
            gstate[i] += gde / float(qrow[i])
            gn += gde / nn
            gpw = -gde / cb[i, CB_P]
            gs -= gde / s
            gq = gd * d * (-e * e * inter[i, IN_LB] + e / (cb[i, CB_Q] + 1.0))
        j = order[i]
        if cb[i, CB_S0] >= lim[LIM_SMIN]:
            gpk[rs, j] += gs / (2.0 * s)
        gpk[rl, j] += gl
        gpk[rx, j] += gx
        gpk[rn, j] += gn
        gpk[rq, j] += gq
        gpk[rp, j] += gpw
        gpk[rw, j] += gw
        gpk[rz, j] += gz
        gpk[rk, j] += gkd
        gpk[rg, j] += gdgw
