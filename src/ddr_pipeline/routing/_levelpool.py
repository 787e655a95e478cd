"""NWM level-pool lake of one routing step and its hand-written reverse mode (docs/routing.md,
*Level-pool lakes and reservoirs*).

Scalar numba functions of plain floats, like ``_nudge.nudge_value``: the CPU engine inlines them
into its sweep at a lake reach, and the CUDA kernels can recompile the same source as device
functions (``_cuda_kernels.device_function``). The torch reference (``_torch_backend``) writes
the same rule with tensor ops, and takes :func:`substep_count` from here (so both pick the same
number of sub-steps).

``par`` is the tuple of the ten lake parameters in ``lakes.LAKE_PARAMS`` order: area (km²),
max elevation, weir elevation (m), weir coefficient, weir length (m), dam length (m), orifice
elevation (m), orifice coefficient, orifice area (m²), withdrawal (m³/s: water taken out of the
network from the pool, :func:`withdrawal`, throttled to 0 at the orifice crest). ``nwm`` selects
NWM's literal ``LEVELPOOL_PHYSICS`` (fractions 0.33/0.67/0.667, the spill evaluated at the stage-start
elevation, outflow = discharge at the end state) instead of the conservative scheme (exact
fractions, outflow = the step-mean outflow implied by the storage change). The conservative
scheme sub-steps by the lake's stiffness and solves a lake far stiffer than the step by backward
Euler (:func:`substep_count`); the reverse modes recompute the sub-step elevations into a scratch
array of ``SUBSTEPS_MAX + 1`` floats (a CUDA kernel's local array).
"""

from __future__ import annotations

import math

import numpy as np

from ddr_pipeline.routing._jit import njit

G2 = 2.0 * 9.81  # 2g as NWM writes it (m/s²)
KM2 = 1.0e6  # m² per km²
#: Most RK3 sub-steps of one lake step: a stiffer lake-step is solved implicitly instead
#: (:func:`substep_count`); also the most sub-steps a caller may ask for (the adjoint's scratch).
SUBSTEPS_MAX = 100
#: Head (m) above the orifice crest below which the stiffness estimate holds the orifice's slope
#: (its dQ/dH = Oc·Oa·g/√(2g·h) is infinite at the crest, where its flow vanishes).
ORIFICE_HEAD_FLOOR = 0.01
#: Target of dt_sub·|dD/dH|/A per sub-step: ≤ 1 keeps RK3's amplification 1+z+z²/2+z³/6 in
#: [1/3, 1] on the linearised equation (monotone decay; RK3 is stable to z ≈ −2.51).
STIFFNESS_TARGET = 1.0
#: Depth (m) above the orifice crest (the dead pool) over which the withdrawal ramps from 0 to its
#: full rate (:func:`withdrawal`).
WITHDRAWAL_RAMP_M = 1.0
#: Largest slope of the withdrawal ramp r(s) = 3s² − 2s³ (at s = 1/2), per WITHDRAWAL_RAMP_M.
_RAMP_SLOPE_MAX = 1.5
#: Number of lake parameters (the length of ``par``; ``lakes.LAKE_PARAMS``).
N_PAR = 10


@njit(error_model="numpy", inline="always")
def _weir_head(hs: float, mxe: float, we: float) -> float:
    """Head over the weir crest, capped at the max elevation (NWM's maxWeirDepth)."""
    return hs - we if hs <= mxe else mxe - we


@njit(error_model="numpy", inline="always")
def discharge(hs: float, hx: float, par: tuple) -> float:
    """Outflow (m³/s) at elevation ``hs``, the spill evaluated at ``hx``: orifice
    Oc·Oa·√(2g(H−Oe)), weir Wc·Wl·min(H−We, LkMxE−We)^1.5, spill Wc·(Wl·Dl)·(H−LkMxE)^1.5 (NWM's
    product), each 0 where its head is ≤ 0 (no square root of a negative head)."""
    mxe, we, wc, wl, dl, oe, oc, oa = par[1], par[2], par[3], par[4], par[5], par[6], par[7], par[8]
    d = 0.0
    ho = hs - oe
    if ho > 0.0:
        d += oc * oa * math.sqrt(G2 * ho)
    hw = _weir_head(hs, mxe, we)
    if hw > 0.0:
        d += wc * wl * hw * math.sqrt(hw)
    hx_ = hx - mxe
    if hx_ > 0.0:
        d += wc * wl * dl * hx_ * math.sqrt(hx_)
    return d


@njit(error_model="numpy", inline="always")
def lake_par(lpar: np.ndarray, lake: int) -> tuple:
    """The ten parameters of lake ``lake`` (row of the (L, 10) ``lpar``) as the step's tuple."""
    return (lpar[lake, 0], lpar[lake, 1], lpar[lake, 2], lpar[lake, 3], lpar[lake, 4],
            lpar[lake, 5], lpar[lake, 6], lpar[lake, 7], lpar[lake, 8], lpar[lake, 9])  # fmt: skip


@njit(error_model="numpy")
def discharges(elevation: np.ndarray, lpar: np.ndarray) -> np.ndarray:
    """(L,) outflow (m³/s) of each lake at its ``elevation`` (:func:`discharge`, the spill at
    the same level); ``lpar``: (L, 10) parameters."""
    out = np.empty(elevation.size)
    for lake in range(elevation.size):
        out[lake] = discharge(elevation[lake], elevation[lake], lake_par(lpar, lake))
    return out


@njit(error_model="numpy", inline="always")
def discharge_vjp(hs: float, hx: float, par: tuple, g: float) -> tuple:
    """(dL/dhs, dL/dhx, dL/d(mxe, we, wc, wl, dl, oe, oc, oa)) of :func:`discharge` for
    dL/dD = ``g``."""
    mxe, we, wc, wl, dl, oe, oc, oa = par[1], par[2], par[3], par[4], par[5], par[6], par[7], par[8]
    ghs = ghx = gmxe = gwe = gwc = gwl = gdl = goe = goc = goa = 0.0
    ho = hs - oe
    if ho > 0.0 and g != 0.0:
        sq = math.sqrt(G2 * ho)
        goc = g * oa * sq
        goa = g * oc * sq
        gh = g * oc * oa * G2 / (2.0 * sq)
        ghs += gh
        goe -= gh
    hw = _weir_head(hs, mxe, we)
    if hw > 0.0 and g != 0.0:
        sw = math.sqrt(hw)
        gwc += g * wl * hw * sw
        gwl += g * wc * hw * sw
        gh = 1.5 * g * wc * wl * sw
        if hs <= mxe:
            ghs += gh
        else:
            gmxe += gh
        gwe -= gh
    hx_ = hx - mxe
    if hx_ > 0.0 and g != 0.0:
        sx = math.sqrt(hx_)
        v = hx_ * sx
        gwc += g * wl * dl * v
        gwl += g * wc * dl * v
        gdl += g * wc * wl * v
        gh = 1.5 * g * wc * wl * dl * sx
        ghx += gh
        gmxe -= gh
    return ghs, ghx, (gmxe, gwe, gwc, gwl, gdl, goe, goc, goa)


@njit(error_model="numpy", inline="always")
def withdrawal(h: float, par: tuple) -> float:
    """Withdrawal (m³/s) at elevation h: W·r(s), s = (h − Oe)/WITHDRAWAL_RAMP_M, r the C¹
    smoothstep 3s² − 2s³ clamped to [0, 1]. C¹ (not a linear clamp) so that dE/dH, which enters
    the adjoint of every stage and the backward-Euler Newton slope, does not jump where the pool
    crosses the ramp's ends; r(0) = 0 stops the withdrawal at the dead pool."""
    s = (h - par[6]) / WITHDRAWAL_RAMP_M
    if s <= 0.0:
        return 0.0
    if s >= 1.0:
        return par[9]
    return par[9] * (s * s * (3.0 - 2.0 * s))


@njit(error_model="numpy", inline="always")
def withdrawal_vjp(h: float, par: tuple, g: float) -> tuple[float, float, float]:
    """(dL/dh, dL/dOe, dL/dW) of :func:`withdrawal` for dL/dE = ``g``."""
    s = (h - par[6]) / WITHDRAWAL_RAMP_M
    if s <= 0.0:
        return 0.0, 0.0, 0.0
    if s >= 1.0:
        return 0.0, 0.0, g
    gh = g * par[9] * (6.0 * s * (1.0 - s)) / WITHDRAWAL_RAMP_M
    return gh, -gh, g * (s * s * (3.0 - 2.0 * s))


@njit(error_model="numpy", inline="always")
def _fractions(nwm: bool) -> tuple[float, float, float]:
    """(inflow fraction of stage 2, of stage 3, displacement factor of stage 3)."""
    if nwm:
        return 0.33, 0.67, 0.667
    return 1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0


@njit(error_model="numpy", inline="always")
def _stages(h: float, ia: float, ib: float, tau: float, par: tuple, nwm: bool) -> tuple:  # noqa: PLR0917
    """The three RK3 stages of one sub-step of length ``tau`` from ``h``, inflow ``ia`` at its
    start and ``ib`` at its end: (h2, h3, k1, k2, k3), k = dH/dt = (I − D − E)/A of each stage
    (E: :func:`withdrawal`; subtracted last, so W = 0 leaves every value bitwise)."""
    area = par[0] * KM2
    f2, f3, c3 = _fractions(nwm)
    k1 = (ia - discharge(h, h, par) - withdrawal(h, par)) / area
    h2 = h + tau * k1 / 3.0
    k2 = (ia + (ib - ia) * f2 - discharge(h2, h if nwm else h2, par) - withdrawal(h2, par)) / area
    h3 = h + c3 * (tau * k2)
    k3 = (ia + (ib - ia) * f3 - discharge(h3, h if nwm else h3, par) - withdrawal(h3, par)) / area
    return h2, h3, k1, k2, k3


@njit(error_model="numpy", inline="always")
def _substep(h: float, ia: float, ib: float, tau: float, par: tuple, nwm: bool) -> tuple:  # noqa: PLR0917
    """(H, withdrawn volume (m³)) after one RK3 sub-step (Heun's third order: H + τ·(k1/4 +
    3k3/4)); the volume takes the same weights, τ·(E(H)/4 + 3E(h3)/4), so that A·ΔH = inflow −
    discharge − withdrawn volume of the sub-step exactly."""
    _, h3, k1, _, k3 = _stages(h, ia, ib, tau, par, nwm)
    hn = h + (tau * k1 / 4.0 + 0.75 * (tau * k3))
    return hn, tau * withdrawal(h, par) / 4.0 + 0.75 * (tau * withdrawal(h3, par))


@njit(error_model="numpy", inline="always")
def _inflow_at(i0: float, i1: float, j: int, n: int) -> float:
    """Inflow at the start of sub-step j of n, linear between the step's ends."""
    if j == 0:
        return i0
    if j == n:
        return i1
    return i0 + (i1 - i0) * (j / n)


@njit(error_model="numpy", inline="always")
def _stiffness(h: float, par: tuple) -> float:
    """|dD/dH| (m²/s) at elevation h, the orifice's slope held at ``ORIFICE_HEAD_FLOOR``."""
    mxe, we, wc, wl, dl, oe, oc, oa = par[1], par[2], par[3], par[4], par[5], par[6], par[7], par[8]
    s = 0.0
    if h > oe:
        s += oc * oa * G2 / (2.0 * math.sqrt(G2 * max(h - oe, ORIFICE_HEAD_FLOOR)))
    if we < h <= mxe:
        s += 1.5 * wc * wl * math.sqrt(h - we)
    if h > mxe:
        s += 1.5 * wc * wl * dl * math.sqrt(h - mxe)
    return s


@njit(error_model="numpy", inline="always")
def _withdrawal_stiffness(h: float, dt: float, par: tuple) -> float:
    """Bound of |d(D+E)/dH| over the elevations a step with withdrawal can fall to: H falls at
    most at (D(h) + E(h))/A (both grow with H) and not below the crest, so the lowest is
    ``low`` = max(h − dt·(D(h)+E(h))/A, Oe + ORIFICE_HEAD_FLOOR) (≤ h), where the orifice's
    slope is largest; plus the ramp's largest slope 1.5·W/ramp where the fall reaches the ramp."""
    oe = par[6]
    low = h - dt * (discharge(h, h, par) + withdrawal(h, par)) / (par[0] * KM2)
    low = min(h, max(low, oe + ORIFICE_HEAD_FLOOR))
    s = _stiffness(low, par)
    if low < oe + WITHDRAWAL_RAMP_M:
        s += _RAMP_SLOPE_MAX * par[9] / WITHDRAWAL_RAMP_M
    return s


@njit(error_model="numpy", inline="always")
def _rise_bound(h: float, imax: float, dt: float, par: tuple) -> float:
    """Highest elevation the lake can reach within the step: at most h + dt·I_max/A, and not
    above the lowest elevation where one outlet alone passes I_max (where dH/dt ≤ 0)."""
    mxe, we, wc, wl, dl, oe, oc, oa = par[1], par[2], par[3], par[4], par[5], par[6], par[7], par[8]
    top = h + dt * imax / (par[0] * KM2)
    if oc * oa > 0.0:
        top = min(top, oe + (imax / (oc * oa)) ** 2 / G2)
    if wc * wl > 0.0:
        hw = we + (imax / (wc * wl)) ** (2.0 / 3.0)
        if hw <= mxe:
            top = min(top, hw)
    if wc * wl * dl > 0.0:
        top = min(top, mxe + (imax / (wc * wl * dl)) ** (2.0 / 3.0))
    return max(h, top)


@njit(error_model="numpy", inline="always")
def substep_count(  # noqa: PLR0917 (scalar device function)
    h: float, i0: float, i1: float, dt: float, par: tuple, nwm: bool, nmin: int
) -> int:
    """Sub-steps of one step (an integer: not differentiated): ``nmin`` RK3 sub-steps for the
    NWM scheme (literal). Conservative scheme: n = max(``nmin``, ⌈σ⌉) RK3 sub-steps, σ =
    dt·|dD/dH|/(A·STIFFNESS_TARGET) at the start elevation and at the highest one the step can
    reach; where that exceeds ``SUBSTEPS_MAX`` (a lake far stiffer than the step) −``nmin``:
    that many backward-Euler sub-steps (:func:`_implicit_substep`, L-stable). With a
    withdrawal the lake may also fall: σ also takes the stiffness at the lowest elevation the
    step can reach (:func:`_withdrawal_stiffness`)."""
    if nwm:
        return nmin
    top = _rise_bound(h, max(i0, i1, 0.0), dt, par)
    s = max(_stiffness(h, par), _stiffness(top, par))
    if par[9] > 0.0:  # W = 0: the count of a lake without withdrawal, bitwise
        s = max(s, _withdrawal_stiffness(h, dt, par))
    sigma = dt * s / (par[0] * KM2 * STIFFNESS_TARGET)
    if not sigma <= SUBSTEPS_MAX:  # also NaN
        return -nmin
    return max(nmin, int(math.ceil(sigma)))


@njit(error_model="numpy", inline="always")
def _slope(h: float, par: tuple) -> float:
    """d(D+E)/dH at h (both arguments of :func:`discharge`; 0 exactly at a crest)."""
    ghs, ghx, _ = discharge_vjp(h, h, par, 1.0)
    return ghs + ghx + withdrawal_vjp(h, par, 1.0)[0]


@njit(error_model="numpy", inline="always")
def _implicit_substep(h: float, ia: float, ib: float, tau: float, par: tuple) -> float:  # noqa: PLR0917
    """Backward Euler over a sub-step with the mean inflow q = (ia+ib)/2: the root of the
    strictly increasing F(x) = A·(x − h)/τ + D(x) + E(x) − q (safeguarded Newton in a bracket:
    F ≥ 0 at h + τq/A, ≤ 0 at h − τ(D(h)+E(h))/A). The outflow implied by the storage change is
    D(x) ≥ 0, the withdrawal τ·E(x); the root is not below the crest when h is not (F(Oe) ≤ 0)."""
    c = par[0] * KM2 / tau
    q = 0.5 * (ia + ib)
    d0 = discharge(h, h, par) + withdrawal(h, par)
    lo, hi = (h, h + q / c) if q >= d0 else (h - d0 / c, h)
    x = h
    for _ in range(100):
        f = c * (x - h) + discharge(x, x, par) + withdrawal(x, par) - q
        if f == 0.0:
            break
        if f > 0.0:
            hi = x
        else:
            lo = x
        xn = x - f / (c + _slope(x, par))
        if not lo < xn < hi:
            xn = 0.5 * (lo + hi)
        if abs(xn - x) <= 1e-15 * max(1.0, abs(x)):
            x = xn
            break
        x = xn
    return x


@njit(error_model="numpy", inline="always")
def _implicit_vjp(  # noqa: PLR0913, PLR0917 (scalar device function)
    h: float, h1: float, tau: float, par: tuple, g: float, gws: float, gpar: np.ndarray
) -> tuple[float, float]:
    """(dL/dh, dL/dq) of :func:`_implicit_substep` (root ``h1``) for dL/dh1 = ``g`` and
    dL/d(withdrawn volume τ·E(h1)) = ``gws``, by the implicit function theorem: dh1 =
    −(∂F/∂·)/F′(h1); parameter gradients added into ``gpar``."""
    c = par[0] * KM2 / tau
    geh, geo, gew = withdrawal_vjp(h1, par, gws * tau)
    gpar[6] += geo
    gpar[9] += gew
    w = (g + geh) / (c + _slope(h1, par))
    gpar[0] -= w * (h1 - h) / tau * KM2
    _, _, gp = discharge_vjp(h1, h1, par, -w)
    for m in range(8):
        gpar[m + 1] += gp[m]
    _, geo, gew = withdrawal_vjp(h1, par, -w)
    gpar[6] += geo
    gpar[9] += gew
    return w * c, w


@njit(error_model="numpy", inline="always")
def _advance(  # noqa: PLR0913, PLR0917 (scalar device function)
    h: float, i0: float, i1: float, j: int, n: int, tau: float, par: tuple, nwm: bool,
    implicit: bool,
) -> tuple[float, float]:  # fmt: skip
    """(H, withdrawn volume (m³)) after sub-step j of n: RK3, or backward Euler where the step
    is (:func:`substep_count`) or where :func:`_crosses_crest`."""
    ia, ib = _inflow_at(i0, i1, j, n), _inflow_at(i0, i1, j + 1, n)
    if not implicit:
        hn, v = _substep(h, ia, ib, tau, par, nwm)
        if not _crosses_crest(h, hn, par, nwm):
            return hn, v
    hn = _implicit_substep(h, ia, ib, tau, par)
    return hn, tau * withdrawal(hn, par)


@njit(error_model="numpy", inline="always")
def _crosses_crest(h: float, hn: float, par: tuple, nwm: bool) -> bool:
    """Whether an RK3 sub-step from ``h`` to ``hn`` fell through the orifice crest (the dead
    pool) of a conservative lake with withdrawal: the orifice's √ head has an unbounded slope
    there, and Torricelli drains to the crest in finite time, so an explicit stage can overshoot
    it by up to ~1 cm (bounded by ``ORIFICE_HEAD_FLOOR`` in :func:`substep_count`). Such a
    sub-step is redone by backward Euler, whose root is not below the crest. Only with W > 0:
    a lake without withdrawal keeps its results bitwise (and NWM's scheme stays literal)."""
    return not nwm and par[9] > 0.0 and hn < par[6] <= h


@njit(error_model="numpy", inline="always")
def _redone(  # noqa: PLR0913, PLR0917 (scalar device function)
    h: float, i0: float, i1: float, j: int, n: int, tau: float, par: tuple, nwm: bool
) -> bool:
    """Whether :func:`_advance` redid RK3 sub-step j by backward Euler (:func:`_crosses_crest`;
    the RK3 sub-step is recomputed only where it could have)."""
    if nwm or not par[9] > 0.0 or h < par[6]:
        return False
    ia, ib = _inflow_at(i0, i1, j, n), _inflow_at(i0, i1, j + 1, n)
    return _crosses_crest(h, _substep(h, ia, ib, tau, par, nwm)[0], par, nwm)


@njit(error_model="numpy", inline="always")
def lake_step(  # noqa: PLR0913, PLR0917 (scalar device function)
    h0: float, i0: float, i1: float, dt: float, par: tuple, nwm: bool, nmin: int
) -> tuple[float, float, float, int]:
    """(H_{t+1}, outflow, withdrawal, sub-steps (:func:`substep_count`)) of one step of length
    ``dt`` from elevation ``h0`` with inflow ``i0`` at its start and ``i1`` at its end (m³/s).
    Withdrawal: the step's withdrawn volume / dt (m³/s; the sub-steps' weights). Conservative:
    outflow = (i0+i1)/2 − A·(H_{t+1}−H_t)/dt − withdrawal (floored at 0 against rounding), so the
    storage change is the step's in − out − withdrawn volume; NWM: the discharge at H_{t+1}."""
    n = substep_count(h0, i0, i1, dt, par, nwm, nmin)
    implicit = n < 0
    n = abs(n)
    tau = dt / n
    h = h0
    vol = 0.0
    for j in range(n):
        h, v = _advance(h, i0, i1, j, n, tau, par, nwm, implicit)
        vol += v
    wd = vol / dt
    if nwm:
        return h, discharge(h, h, par), wd, n
    out = 0.5 * (i0 + i1) - par[0] * KM2 * (h - h0) / dt - wd
    return h, max(out, 0.0), wd, n


@njit(error_model="numpy", inline="always")
def _stage_vjp(  # noqa: PLR0917 (scalar device function)
    hs: float, hx: float, par: tuple, gi: float, gw: float, gpar: np.ndarray
) -> tuple[float, float, float]:
    """Reverse mode of one RK stage's outflows D(hs, hx) + E(hs), entering its rate with the sign
    −1 (``gi`` = dL/d(stage inflow), i.e. dL/d(rate)/A) and E(hs) also entering the withdrawn
    volume (``gw``): (dL/dhs through D, dL/dhx, dL/dhs through E); parameter gradients added
    into ``gpar``. The caller sums the three in the scheme's order."""
    gs, gx, gp = discharge_vjp(hs, hx, par, -gi)
    for m in range(8):
        gpar[m + 1] += gp[m]
    ge, geo, gew = withdrawal_vjp(hs, par, gw - gi)
    gpar[6] += geo
    gpar[9] += gew
    return gs, gx, ge


@njit(error_model="numpy", inline="always")
def _substep_vjp(  # noqa: PLR0913, PLR0917 (scalar device function)
    h: float, ia: float, ib: float, tau: float, par: tuple, nwm: bool, g: float, gws: float,
    gpar: np.ndarray,
) -> tuple[float, float, float]:  # fmt: skip
    """(dL/dh, dL/dia, dL/dib) of :func:`_substep` for dL/dH_new = ``g`` and dL/d(withdrawn
    volume) = ``gws``; parameter gradients added into ``gpar`` (ten entries, area in km²)."""
    area = par[0] * KM2
    f2, f3, c3 = _fractions(nwm)
    h2, h3, k1, k2, k3 = _stages(h, ia, ib, tau, par, nwm)
    gh = g
    gk1 = g * tau / 4.0
    gk3 = 0.75 * tau * g
    # k3 = (I3 − D(h3, hx3) − E(h3)) / A; the volume holds 0.75·τ·E(h3)
    gi3 = gk3 / area
    garea = -k3 * gk3 / area
    gh3, gx, ge = _stage_vjp(h3, h if nwm else h3, par, gi3, 0.75 * tau * gws, gpar)
    if nwm:
        gh += gx
    else:
        gh3 += gx
    gh3 += ge
    gh += gh3
    gk2 = c3 * tau * gh3
    # k2 = (I2 − D(h2, hx2) − E(h2)) / A
    gi2 = gk2 / area
    garea -= k2 * gk2 / area
    gh2, gx, ge = _stage_vjp(h2, h if nwm else h2, par, gi2, 0.0, gpar)
    if nwm:
        gh += gx
    else:
        gh2 += gx
    gh2 += ge
    gh += gh2
    gk1 += tau * gh2 / 3.0
    # k1 = (ia − D(h, h) − E(h)) / A; the volume holds τ·E(h)/4
    gi1 = gk1 / area
    garea -= k1 * gk1 / area
    gs, gx, ge = _stage_vjp(h, h, par, gi1, tau * gws / 4.0, gpar)
    gh += gs + gx
    gh += ge
    gpar[0] += garea * KM2
    gia = gi1 + (1.0 - f2) * gi2 + (1.0 - f3) * gi3
    gib = f2 * gi2 + f3 * gi3
    return gh, gia, gib


@njit(error_model="numpy", inline="always")
def lake_step_vjp(  # noqa: PLR0913, PLR0917 (scalar device function)
    h0: float, i0: float, i1: float, dt: float, par: tuple, nwm: bool, nmin: int,
    gh1: float, gout: float, hs: np.ndarray, gpar: np.ndarray,
) -> tuple[float, float, float]:  # fmt: skip
    """(dL/dH_t, dL/di0, dL/di1) of :func:`lake_step` for dL/dH_{t+1} = ``gh1`` and
    dL/doutflow = ``gout`` (the withdrawal output is not differentiated); parameter gradients
    added into ``gpar`` (ten entries). ``hs``: scratch of at least ``SUBSTEPS_MAX + 1`` floats
    (the sub-steps' elevations, recomputed)."""
    n = substep_count(h0, i0, i1, dt, par, nwm, nmin)
    implicit = n < 0
    n = abs(n)
    tau = dt / n
    hs[0] = h0
    vol = 0.0
    for j in range(n):
        hj, v = _advance(hs[j], i0, i1, j, n, tau, par, nwm, implicit)
        hs[j + 1] = hj
        vol += v
    h1 = hs[n]
    gh = gh1
    gi0 = gi1 = gh0 = gws = 0.0
    if nwm:
        gs, gx, gp = discharge_vjp(h1, h1, par, gout)
        for m in range(8):
            gpar[m + 1] += gp[m]
        gh += gs + gx
    else:
        area = par[0] * KM2
        if 0.5 * (i0 + i1) - area * (h1 - h0) / dt - vol / dt >= 0.0 and gout != 0.0:
            gi0 += 0.5 * gout
            gi1 += 0.5 * gout
            gpar[0] -= gout * KM2 * (h1 - h0) / dt
            gh -= gout * area / dt
            gh0 += gout * area / dt
            gws = -gout / dt
    for j in range(n - 1, -1, -1):
        ja, jb = j / n, (j + 1) / n
        if implicit or _redone(hs[j], i0, i1, j, n, tau, par, nwm):
            gh, gq = _implicit_vjp(hs[j], hs[j + 1], tau, par, gh, gws, gpar)
            ga = gb = 0.5 * gq
        else:
            gh, ga, gb = _substep_vjp(hs[j], _inflow_at(i0, i1, j, n),
                                      _inflow_at(i0, i1, j + 1, n), tau, par, nwm, gh, gws,
                                      gpar)  # fmt: skip
        gi0 += (1.0 - ja) * ga + (1.0 - jb) * gb
        gi1 += ja * ga + jb * gb
    return gh + gh0, gi0, gi1


@njit(error_model="numpy")
def slope(h: float, par: tuple) -> float:
    """:func:`_slope` (for the torch reference)."""
    return _slope(h, par)


@njit(error_model="numpy")
def implicit_root(h: float, ia: float, ib: float, tau: float, par: tuple) -> float:  # noqa: PLR0917
    """:func:`_implicit_substep` (for the torch reference)."""
    return _implicit_substep(h, ia, ib, tau, par)
