"""Muskingum–Cunge physics (routing-physics.md §3) of one reach-step, and its hand-written reverse mode.

Numba functions used by the compiled kernels; arithmetic is float64 whatever the storage dtype.
Per reach and parameter row, :func:`fill_constants` caches the values that do not depend on the
state (``CB_*`` columns; refreshed only when the row of a time-varying parameter changes, and
then only the columns that depend on it). :func:`reach_coefs` evaluates C1..C4 and the raw exchange ζ of one reach
from its state Q_t, :func:`reach_physics` also returns the intermediates the reverse mode needs, and
:func:`reach_vjp` back-propagates dL/d(C1..C4, ζ_raw) to Q_t and to every raw parameter. They are
inlined into the sweeps of ``_mc_kernels`` (no per-step coefficient arrays; the settings
``lim`` may be the vector or a tuple of its values); :func:`upstream_sums`
(Σ_up Q_t, Σ_up Q_{t+1} of one reach) is shared by both kernel modules. Clamps pass the
gradient where the value lies inside the bounds, bounds included (``torch.clamp`` semantics), and
zero it outside.

The Cunge physics options (docs/routing.md, *Cunge options*) are scalar functions of plain floats
(:func:`celerity_factor`, :func:`cunge_x` and their reverse modes), undecorated so that both
``numba.njit`` (here) and ``numba.cuda.jit(device=True)`` can compile them; the switches travel in
the settings vector (``LIM_X_CUNGE``, ``LIM_CEL_EXACT``), so no kernel signature depends on them.
So does DDR's geometry (``LIM_GEOM_DDR``, :func:`ddr_geometry` and its reverse mode): W and z
derived from the depth of the step instead of the ``CB_W``/``CB_Z`` columns.
"""

from __future__ import annotations

import math

import numpy as np

from ddr_pipeline.routing._jit import njit

# columns of the per-reach constant buffer
CB_L, CB_X, CB_N, CB_W, CB_Z, CB_S, CB_E, CB_LOGC, CB_R, CB_HB, CB_KD, CB_DGW = range(12)
CB_Q, CB_P, CB_S0, CB_HBRAW = range(12, 16)
N_CB = 16

# entries of the settings vector: floors and clamps, then the Cunge options (1.0 = on)
LIM_QMIN, LIM_DMIN, LIM_BMIN, LIM_VMIN, LIM_VMAX, LIM_SMIN, LIM_HBMIN, LIM_HBMAX = range(8)
LIM_XMIN, LIM_XMAX, LIM_X_CUNGE, LIM_CEL_EXACT, LIM_GEOM_DDR = range(8, 13)
N_LIM = 13

# DDR's side-slope clamp of its derived geometry (ddr.geometry.trapezoidal)
DDR_Z_MIN, DDR_Z_MAX = 0.5, 50.0

# order of the parameter arrays passed to the kernels (a tuple of (rows, N) arrays)
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
P_L, P_S, P_X, P_N, P_Q, P_P, P_W, P_Z, P_KD, P_DGW = range(10)

_TWO_THIRDS = 2.0 / 3.0
_FIVE_THIRDS = 5.0 / 3.0
_FOUR_THIRDS = 4.0 / 3.0


def celerity_factor(rad: float, r: float, w: float, exact: bool) -> float:
    """β in c = β·v: 5/3 (wide rectangle) or, ``exact``, dQ/dA of Manning's law in the
    trapezoid of water-surface width W and side slope z at the current stage,
    β = 5/3 − (4/3)·R·√(1+z²)/W (``r`` = √(1+z²))."""
    if exact:
        return _FIVE_THIRDS - _FOUR_THIRDS * rad * r / w
    return _FIVE_THIRDS


def celerity_factor_vjp(
    gbeta: float, rad: float, r: float, w: float, exact: bool
) -> tuple[float, float, float]:
    """dL/d(R, √(1+z²), W) from dL/dβ."""
    if not exact:
        return 0.0, 0.0, 0.0
    g = -_FOUR_THIRDS * gbeta / w
    return g * r, g * rad, -g * rad * r / w


def cunge_x(  # noqa: PLR0917 (scalar device function)
    q: float, w: float, s0: float, cel: float, length: float, xmin: float, xmax: float
) -> tuple[float, float, bool]:
    """Cunge's X: numerical diffusion c·L·(1/2 − X) equal to the physical Q/(2·W·S0).

    Returns (X = clamp(1/2 − φ, xmin, xmax), φ = Q/(2·W·S0·c·L), whether the clamp is active).
    """
    phi = q / (2.0 * w * s0 * cel * length)
    x = 0.5 - phi
    clamped = x < xmin or x > xmax
    return min(max(x, xmin), xmax), phi, clamped


def cunge_x_vjp(
    gx: float, phi: float, clamped: bool
) -> tuple[float, float, float, float, float]:
    """dL/d(log Q, log W, log S0, log c, log L) of :func:`cunge_x` from dL/dX (X = 1/2 − φ and
    ∂φ/∂log a = ±φ: +φ for Q, −φ for the others); zero where the clamp is active."""
    if clamped:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    g = -gx * phi  # dL/dφ · φ
    return g, -g, -g, -g, -g


def ddr_geometry(p: float, q: float, d: float) -> tuple[float, float, float, bool]:
    """DDR's geometry at depth d (``geometry="ddr"``): top width W = p·d^q and side slope
    z = clamp(W·q/(2d), 0.5, 50). Returns (W, z, √(1+z²), whether the z clamp is active)."""
    w = p * math.exp(q * math.log(d))
    zraw = w * q / (2.0 * d)
    zcl = zraw < DDR_Z_MIN or zraw > DDR_Z_MAX
    z = min(max(zraw, DDR_Z_MIN), DDR_Z_MAX)
    return w, z, math.sqrt(1.0 + z * z), zcl


def ddr_geometry_vjp(  # noqa: PLR0917 (scalar device function)
    gw: float, gz: float, p: float, q: float, d: float, w: float, zcl: bool
) -> tuple[float, float, float]:
    """dL/d(p, q, d) of :func:`ddr_geometry` from dL/dW and dL/dz (z's gradient is zero where
    its clamp is active)."""
    if not zcl:  # z = W·q/(2d)
        gw += gz * q / (2.0 * d)
        gq = gz * w / (2.0 * d)
        gd = -gz * w * q / (2.0 * d * d)
    else:
        gq = 0.0
        gd = 0.0
    return gw * w / p, gq + gw * w * math.log(d), gd + gw * w * q / d


_jit = njit(error_model="numpy", inline="always")
_ddr_geometry = _jit(ddr_geometry)
_ddr_geometry_vjp = _jit(ddr_geometry_vjp)
_celerity_factor = _jit(celerity_factor)
_celerity_factor_vjp = _jit(celerity_factor_vjp)
_cunge_x = _jit(cunge_x)
_cunge_x_vjp = _jit(cunge_x_vjp)


@njit(error_model="numpy", inline="always")
def row_of(prow: np.ndarray, k: int, t: int) -> int:
    """Row of parameter k (PARAM_NAMES order) that drives step t: ``t // prow[k]`` for a
    time-varying parameter (``prow[k]`` steps per row), 0 for a static one (``prow[k] == 0``)."""
    return t // prow[k] if prow[k] > 0 else 0


@njit(error_model="numpy")
def rows_change(prow: np.ndarray, t_a: int, t_b: int) -> bool:
    """Whether some time-varying parameter uses a different row at step ``t_a`` than at ``t_b``."""
    for k in range(prow.size):  # noqa: SIM110 (numba: no generator expressions)
        if prow[k] > 0 and t_a // prow[k] != t_b // prow[k]:
            return True
    return False


@njit(error_model="numpy", inline="always")
def upstream_sums(
    prev: np.ndarray, new: np.ndarray, up_ptr: np.ndarray, up_idx: np.ndarray, k: int
) -> tuple[float, float]:
    """(Σ_up Q_t, Σ_up Q_{t+1}) of entry k: ``prev``/``new`` summed over ``up_idx`` entries
    ``up_ptr[k]:up_ptr[k + 1]`` (float64, in CSR order)."""
    usum = 0.0
    vsum = 0.0
    for m in range(up_ptr[k], up_ptr[k + 1]):
        j = up_idx[m]
        usum += prev[j]
        vsum += new[j]
    return usum, vsum


@njit(error_model="numpy")
def fill_constants(  # noqa: PLR0917 (compiled kernel signature)
    cb: np.ndarray, t: int, params: tuple, prow: np.ndarray, lim: np.ndarray,
    order: np.ndarray, full: bool, lo: int, hi: int,
) -> None:  # fmt: skip
    """Fill rows ``lo:hi`` of the (N, N_CB) constant buffer (topological positions) for step t
    from the parameter arrays ``params`` (PARAM_NAMES order, each (rows, N) in user columns; row
    :func:`row_of` drives step t). With ``full=False`` only the columns that depend on a
    time-varying parameter are recomputed."""
    pl, ps, px, pn, pq = params[P_L], params[P_S], params[P_X], params[P_N], params[P_Q]
    pp, pw, pz, pkd, pg = params[P_P], params[P_W], params[P_Z], params[P_KD], params[P_DGW]
    rl, rs, rx = row_of(prow, P_L, t), row_of(prow, P_S, t), row_of(prow, P_X, t)
    rn, rq, rp = row_of(prow, P_N, t), row_of(prow, P_Q, t), row_of(prow, P_P, t)
    rw, rz, rk = row_of(prow, P_W, t), row_of(prow, P_Z, t), row_of(prow, P_KD, t)
    rg = row_of(prow, P_DGW, t)
    # scalar tests, no temporary array (this function is also a CUDA device function)
    f_l, f_s, f_x = full or prow[P_L] > 0, full or prow[P_S] > 0, full or prow[P_X] > 0
    f_n, f_q, f_p = full or prow[P_N] > 0, full or prow[P_Q] > 0, full or prow[P_P] > 0
    f_w, f_z, f_kd = full or prow[P_W] > 0, full or prow[P_Z] > 0, full or prow[P_KD] > 0
    f_g = full or prow[P_DGW] > 0
    f_logc = f_s or f_n or f_q or f_p
    f_hb = f_w or f_z
    smin, hbmin, hbmax = lim[LIM_SMIN], lim[LIM_HBMIN], lim[LIM_HBMAX]
    for k in range(lo, hi):
        i = order[k]
        if f_s:
            s0 = float(ps[rs, i])
            cb[k, CB_S0] = s0
            cb[k, CB_S] = math.sqrt(max(s0, smin))
        if f_n:
            cb[k, CB_N] = pn[rn, i]
        if f_q:
            q = float(pq[rq, i])
            cb[k, CB_Q] = q
            cb[k, CB_E] = 3.0 / (5.0 + 3.0 * q)
        if f_p:
            cb[k, CB_P] = pp[rp, i]
        if f_logc:
            cb[k, CB_LOGC] = math.log(
                cb[k, CB_N] * (cb[k, CB_Q] + 1.0) / (cb[k, CB_P] * cb[k, CB_S])
            )
        if f_w:
            cb[k, CB_W] = pw[rw, i]
        if f_z:
            z = float(pz[rz, i])
            cb[k, CB_Z] = z
            cb[k, CB_R] = math.sqrt(1.0 + z * z)
        if f_hb:
            hbraw = cb[k, CB_W] / (2.0 * cb[k, CB_Z])
            cb[k, CB_HBRAW] = hbraw
            cb[k, CB_HB] = min(max(hbraw, hbmin), hbmax)
        if f_l:
            cb[k, CB_L] = pl[rl, i]
        if f_x:
            cb[k, CB_X] = px[rx, i]
        if f_kd:
            cb[k, CB_KD] = pkd[rk, i]
        if f_g:
            cb[k, CB_DGW] = pg[rg, i]


@njit(error_model="numpy", inline="always")
def reach_physics(  # noqa: PLR0917 (compiled kernel signature)
    cb: np.ndarray, k: int, qt: float, dt: float, leak: bool, lim: np.ndarray | tuple
) -> tuple:
    """C1..C4, ζ_raw of the reach at position k from its state ``qt``, plus the intermediates
    (d, d clamped, log base, B, B clamped, perimeter, R, v, v clamped, celerity). With the Cunge
    options the celerity factor β and X come from :func:`celerity_factor` / :func:`cunge_x`."""
    lb = math.log(qt) + cb[k, CB_LOGC]
    d = math.exp(cb[k, CB_E] * lb)
    dcl = d < lim[LIM_DMIN]
    if dcl:
        d = lim[LIM_DMIN]
    if lim[LIM_GEOM_DDR] != 0.0:
        w, z, r, _zc = _ddr_geometry(cb[k, CB_P], cb[k, CB_Q], d)
    else:
        w, z, r = cb[k, CB_W], cb[k, CB_Z], cb[k, CB_R]
    b = w - 2.0 * z * d
    bcl = b < lim[LIM_BMIN]
    if bcl:
        b = lim[LIM_BMIN]
    area = 0.5 * (w + b) * d
    perim = b + 2.0 * d * r
    rad = area / perim
    v = math.exp(_TWO_THIRDS * math.log(rad)) * cb[k, CB_S] / cb[k, CB_N]
    vmin, vmax = lim[LIM_VMIN], lim[LIM_VMAX]
    vcl = v < vmin or v > vmax
    cel = _celerity_factor(rad, r, w, lim[LIM_CEL_EXACT] != 0.0) * min(max(v, vmin), vmax)
    u = 2.0 * cb[k, CB_L] / cel  # 2K
    if lim[LIM_X_CUNGE] != 0.0:
        s = cb[k, CB_S]
        xx = _cunge_x(qt, w, s * s, cel, cb[k, CB_L], lim[LIM_XMIN], lim[LIM_XMAX])[0]
    else:
        xx = cb[k, CB_X]
    den = u * (1.0 - xx) + dt
    c1 = (dt - u * xx) / den
    c2 = (dt + u * xx) / den
    c3 = (u * (1.0 - xx) - dt) / den
    c4 = 2.0 * dt / den
    zr = cb[k, CB_KD] * w * cb[k, CB_L] * (d - cb[k, CB_HB] + cb[k, CB_DGW]) if leak else 0.0
    return c1, c2, c3, c4, zr, d, dcl, lb, b, bcl, perim, rad, v, vcl, cel


@njit(error_model="numpy", inline="always")
def reach_coefs(  # noqa: PLR0917 (compiled kernel signature)
    cb: np.ndarray, k: int, qt: float, dt: float, leak: bool, lim: np.ndarray | tuple
) -> tuple[float, float, float, float, float]:
    """C1..C4 and ζ_raw of the reach at position k from its state ``qt`` (forward only)."""
    r = reach_physics(cb, k, qt, dt, leak, lim)
    return r[0], r[1], r[2], r[3], r[4]


@njit(error_model="numpy", inline="always")
def reach_vjp(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    cb: np.ndarray,
    k: int,
    qt: float,
    ph: tuple,
    g: tuple,
    dt: float,
    leak: bool,
    lim: np.ndarray | tuple,
) -> tuple:
    """Back-propagate ``g`` = dL/d(C1, C2, C3, C4, ζ_raw) through the physics ``ph`` (the tuple of
    :func:`reach_physics`) of the reach at position k. Returns dL/dQ_t and the gradients of the
    raw parameters in PARAM_NAMES order."""
    g1, g2, g3, g4, gzr = g
    d, dcl, lb, b, bcl = ph[5], ph[6], ph[7], ph[8], ph[9]
    perim, rad, v, vcl, cel = ph[10], ph[11], ph[12], ph[13], ph[14]
    nn, s = cb[k, CB_N], cb[k, CB_S]
    ddr = lim[LIM_GEOM_DDR] != 0.0
    zcl = False
    if ddr:
        w, z, r, zcl = _ddr_geometry(cb[k, CB_P], cb[k, CB_Q], d)
    else:
        w, z, r = cb[k, CB_W], cb[k, CB_Z], cb[k, CB_R]
    length = cb[k, CB_L]
    cunge = lim[LIM_X_CUNGE] != 0.0
    exact = lim[LIM_CEL_EXACT] != 0.0
    phi = 0.0
    xcl = True
    if cunge:
        xx, phi, xcl = _cunge_x(qt, w, s * s, cel, length, lim[LIM_XMIN], lim[LIM_XMAX])
    else:
        xx = cb[k, CB_X]
    kk = length / cel
    u = 2.0 * kk
    den = u * (1.0 - xx) + dt
    den2 = den * den
    gu = dt / den2 * (-g1 + (2.0 * xx - 1.0) * g2 + 2.0 * (1.0 - xx) * (g3 - g4))
    gx = u / den2 * (-u * g1 + (u + 2.0 * dt) * g2 + 2.0 * dt * (g4 - g3))
    gk = 2.0 * gu
    gl = gk / cel
    gcel = -gk * kk / cel
    gstate = 0.0
    gw = 0.0
    gs = 0.0
    if cunge:  # X(Q_t, W, S0, c, L); the channel's X gets no gradient
        glq, glw, gls, glc, gll = _cunge_x_vjp(gx, phi, xcl)
        gx = 0.0
        gstate = glq / qt
        gw = glw / w
        gs = 2.0 * gls / s  # S0 = s²
        gcel += glc / cel
        gl += gll / length
    beta = _celerity_factor(rad, r, w, exact)
    gbeta = gcel * min(max(v, lim[LIM_VMIN]), lim[LIM_VMAX])
    gv = 0.0 if vcl else gcel * beta
    grad_r, grr, gwb = _celerity_factor_vjp(gbeta, rad, r, w, exact)
    gw += gwb
    grad_r += gv * _TWO_THIRDS * v / rad
    gs += gv * v / s
    gn = -gv * v / nn
    ga = grad_r / perim
    gperim = -grad_r * rad / perim
    gb = gperim + 0.5 * d * ga
    gd = 2.0 * r * gperim + 0.5 * (w + b) * ga
    gz = (2.0 * d * gperim + grr) * z / r
    gw += 0.5 * d * ga
    if not bcl:
        gw += gb
        gz -= 2.0 * d * gb
        gd -= 2.0 * z * gb
    gkd = 0.0
    gdgw = 0.0
    if leak:
        kd = cb[k, CB_KD]
        kdwl = kd * w * length
        gkdwl = gzr * (d - cb[k, CB_HB] + cb[k, CB_DGW])
        gd += gzr * kdwl
        gdgw = gzr * kdwl
        gkd = gkdwl * w * length
        gw += gkdwl * kd * length
        gl += gkdwl * kd * w
        hbraw = cb[k, CB_HBRAW]
        if lim[LIM_HBMIN] <= hbraw <= lim[LIM_HBMAX]:
            ghb = -gzr * kdwl
            gw += ghb / (2.0 * z)
            gz -= ghb * hbraw / z
    gq = 0.0
    gpw = 0.0
    if ddr:  # W and z derived from the (clamped) depth: no gradient to the channel's W, z
        gpw, gq, gdg = _ddr_geometry_vjp(gw, gz, cb[k, CB_P], cb[k, CB_Q], d, w, zcl)
        gd += gdg
        gw = 0.0
        gz = 0.0
    if not dcl:
        e = cb[k, CB_E]
        gde = gd * d * e
        gstate += gde / qt
        gn += gde / nn
        gpw -= gde / cb[k, CB_P]
        gs -= gde / s
        gq += gd * d * (-e * e * lb + e / (cb[k, CB_Q] + 1.0))
    gslope = gs / (2.0 * s) if cb[k, CB_S0] >= lim[LIM_SMIN] else 0.0
    return gstate, gl, gslope, gx, gn, gq, gpw, gw, gz, gkd, gdgw
