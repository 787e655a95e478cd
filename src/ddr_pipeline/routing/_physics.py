"""Scalar Muskingum–Cunge physics (routing-physics.md §3) and its hand-written reverse mode.

Numba functions used by the compiled kernels. Arithmetic is float64 whatever the storage dtype.
Per reach and parameter row, :func:`fill_constants` caches the values that do not depend on the
state (``CB_*`` columns); :func:`coefficients` evaluates C1..C4 and the raw exchange ζ for a state Q,
and :func:`coefficients_vjp` returns the gradients of ``g1·C1 + … + g4·C4 + gz·ζ_raw`` with respect to
Q and every raw parameter. Clamps pass the gradient where the value is inside the bounds, bounds
included (``torch.clamp`` semantics), and zero it outside.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# columns of the per-reach constant buffer
CB_L, CB_X, CB_N, CB_W, CB_Z, CB_S, CB_E, CB_LOGC, CB_R, CB_HB, CB_KD, CB_DGW = range(12)
CB_Q, CB_P, CB_S0C, CB_S0, CB_HBRAW = range(12, 17)
N_CB = 17

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
def _row(arr: np.ndarray, t: int) -> int:
    return t if arr.shape[0] > 1 else 0


@numba.njit(cache=True)
def fill_constants(
    cb: np.ndarray,
    t: int,
    length: np.ndarray,
    slope: np.ndarray,
    x: np.ndarray,
    n: np.ndarray,
    qs: np.ndarray,
    p: np.ndarray,
    width: np.ndarray,
    side: np.ndarray,
    kd: np.ndarray,
    dgw: np.ndarray,
    lim: np.ndarray,
) -> None:
    """Fill the (N, N_CB) constant buffer from parameter row t."""
    rl, rs, rx, rn = _row(length, t), _row(slope, t), _row(x, t), _row(n, t)
    rq, rp, rw, rz = _row(qs, t), _row(p, t), _row(width, t), _row(side, t)
    rk, rg = _row(kd, t), _row(dgw, t)
    for i in range(cb.shape[0]):
        s0 = float(slope[rs, i])
        s0c = max(s0, lim[LIM_SMIN])
        sq = math.sqrt(s0c)
        nn = float(n[rn, i])
        q = float(qs[rq, i])
        pp = float(p[rp, i])
        w = float(width[rw, i])
        z = float(side[rz, i])
        hbraw = w / (2.0 * z)
        cb[i, CB_L] = length[rl, i]
        cb[i, CB_X] = x[rx, i]
        cb[i, CB_N] = nn
        cb[i, CB_W] = w
        cb[i, CB_Z] = z
        cb[i, CB_S] = sq
        cb[i, CB_E] = 3.0 / (5.0 + 3.0 * q)
        cb[i, CB_LOGC] = math.log(nn * (q + 1.0) / (pp * sq))
        cb[i, CB_R] = math.sqrt(1.0 + z * z)
        cb[i, CB_HB] = min(max(hbraw, lim[LIM_HBMIN]), lim[LIM_HBMAX])
        cb[i, CB_KD] = kd[rk, i]
        cb[i, CB_DGW] = dgw[rg, i]
        cb[i, CB_Q] = q
        cb[i, CB_P] = pp
        cb[i, CB_S0C] = s0c
        cb[i, CB_S0] = s0
        cb[i, CB_HBRAW] = hbraw


@numba.njit(cache=True, inline="always")
def _depth(qt: float, c: np.ndarray, dmin: float) -> tuple[float, bool, float]:
    lb = math.log(qt) + c[CB_LOGC]
    draw = math.exp(c[CB_E] * lb)
    if draw < dmin:
        return dmin, True, lb
    return draw, False, lb


@numba.njit(cache=True)
def coefficients(
    qt: float, c: np.ndarray, dt: float, leak: bool, lim: np.ndarray
) -> tuple[float, float, float, float, float]:
    """(C1, C2, C3, C4, ζ_raw) for state ``qt`` and constant row ``c``."""
    d, _, _ = _depth(qt, c, lim[LIM_DMIN])
    w = c[CB_W]
    b = max(w - 2.0 * c[CB_Z] * d, lim[LIM_BMIN])
    area = 0.5 * (w + b) * d
    perim = b + 2.0 * d * c[CB_R]
    rad = area / perim
    v = math.exp(_TWO_THIRDS * math.log(rad)) * c[CB_S] / c[CB_N]
    v = min(max(v, lim[LIM_VMIN]), lim[LIM_VMAX])
    u = 2.0 * c[CB_L] / (_FIVE_THIRDS * v)  # 2K
    xx = c[CB_X]
    den = u * (1.0 - xx) + dt
    c1 = (dt - u * xx) / den
    c2 = (dt + u * xx) / den
    c3 = (u * (1.0 - xx) - dt) / den
    c4 = 2.0 * dt / den
    zr = 0.0
    if leak:
        zr = c[CB_KD] * w * c[CB_L] * (d - c[CB_HB] + c[CB_DGW])
    return c1, c2, c3, c4, zr


@numba.njit(cache=True)
def coefficients_vjp(
    qt: float,
    c: np.ndarray,
    dt: float,
    leak: bool,
    lim: np.ndarray,
    g1: float,
    g2: float,
    g3: float,
    g4: float,
    gzr: float,
    gpar: np.ndarray,
) -> float:
    """Reverse mode of :func:`coefficients`; adds parameter gradients to ``gpar`` (PARAM_NAMES
    order) and returns the gradient with respect to ``qt``."""
    d, dcl, lb = _depth(qt, c, lim[LIM_DMIN])
    w, z, r, nn, s = c[CB_W], c[CB_Z], c[CB_R], c[CB_N], c[CB_S]
    length, xx = c[CB_L], c[CB_X]
    braw = w - 2.0 * z * d
    bcl = braw < lim[LIM_BMIN]
    b = lim[LIM_BMIN] if bcl else braw
    area = 0.5 * (w + b) * d
    perim = b + 2.0 * d * r
    rad = area / perim
    v = math.exp(_TWO_THIRDS * math.log(rad)) * s / nn
    vcl = v < lim[LIM_VMIN] or v > lim[LIM_VMAX]
    vc = min(max(v, lim[LIM_VMIN]), lim[LIM_VMAX])
    cel = _FIVE_THIRDS * vc
    k = length / cel
    u = 2.0 * k
    den = u * (1.0 - xx) + dt
    den2 = den * den
    gu = dt / den2 * (-g1 + (2.0 * xx - 1.0) * g2 + 2.0 * (1.0 - xx) * (g3 - g4))
    gx = u / den2 * (-u * g1 + (u + 2.0 * dt) * g2 + 2.0 * dt * (g4 - g3))
    gk = 2.0 * gu
    gl = gk / cel
    gcel = -gk * k / cel
    gv = 0.0 if vcl else _FIVE_THIRDS * gcel
    gr_ = gv * _TWO_THIRDS * v / rad
    gs = gv * v / s
    gn = -gv * v / nn
    ga = gr_ / perim
    gp_ = -gr_ * rad / perim
    gb = gp_ + 0.5 * d * ga
    gd = 2.0 * r * gp_ + 0.5 * (w + b) * ga
    gz = 2.0 * d * gp_ * z / r
    gw = 0.5 * d * ga
    if not bcl:
        gw += gb
        gz -= 2.0 * d * gb
        gd -= 2.0 * z * gb
    gkd = 0.0
    gdgw = 0.0
    if leak:
        kd = c[CB_KD]
        kdwl = kd * w * length
        h = d - c[CB_HB] + c[CB_DGW]
        gkdwl = gzr * h
        gd += gzr * kdwl
        gdgw = gzr * kdwl
        gkd = gkdwl * w * length
        gw += gkdwl * kd * length
        gl += gkdwl * kd * w
        hbraw = c[CB_HBRAW]
        if lim[LIM_HBMIN] <= hbraw <= lim[LIM_HBMAX]:
            ghb = -gzr * kdwl
            gw += ghb / (2.0 * z)
            gz -= ghb * hbraw / z
    gq_state = 0.0
    gq = 0.0
    gpw = 0.0
    if not dcl:
        e = c[CB_E]
        q = c[CB_Q]
        gde = gd * d * e
        gq_state = gde / qt
        gn += gde / nn
        gpw = -gde / c[CB_P]
        gs -= gde / s
        gq = gd * d * (-e * e * lb + e / (q + 1.0))
    gslope = 0.0
    if c[CB_S0] >= lim[LIM_SMIN]:
        gslope = gs / (2.0 * s)
    gpar[0] += gl
    gpar[1] += gslope
    gpar[2] += gx
    gpar[3] += gn
    gpar[4] += gq
    gpar[5] += gpw
    gpar[6] += gw
    gpar[7] += gz
    gpar[8] += gkd
    gpar[9] += gdgw
    return gq_state
