"""Level-scheduled pure-torch Muskingum–Cunge: the device-agnostic reference (``backend="torch"``).

Reaches are grouped by topological level (every upstream reach is on a lower level). Per step the
coefficients of all reaches are computed in one vectorised pass; then one vectorised update per
level solves the lower-triangular recurrence. Gradients come from torch autograd (one graph node per
op per level per step), so this path trades memory for device independence. ``backend="auto"``
never picks it: CPU tensors route with the numba engine and CUDA tensors with the CUDA kernels
(:func:`~ddr_pipeline.routing.muskingum_cunge.choose_backend`); tests compare both against it.
Numerics follow docs/routing.md (Numerics) exactly, in the input dtype.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing._levelpool import (
    G2,
    KM2,
    WITHDRAWAL_RAMP_M,
    implicit_root,
    slope,
    substep_count,
)
from ddr_pipeline.routing._physics import (
    DDR_Z_MAX,
    DDR_Z_MIN,
    LIM_BMIN,
    LIM_CEL_EXACT,
    LIM_DMIN,
    LIM_GEOM_DDR,
    LIM_HBMAX,
    LIM_HBMIN,
    LIM_QMIN,
    LIM_SMIN,
    LIM_VMAX,
    LIM_VMIN,
    LIM_X_CUNGE,
    LIM_XMAX,
    LIM_XMIN,
)
from ddr_pipeline.routing.lakes import LakeArrays

#: Device tensors derived from a network, owned by this backend: network -> {(what, device): value}.
#: Weak keys: an entry goes when its network does (networks compare by identity).
_DEVICE_TENSORS: weakref.WeakKeyDictionary[RiverNetwork, dict[tuple[str, str], Any]] = (
    weakref.WeakKeyDictionary()
)


def _cached(net: RiverNetwork, what: str, device: torch.device, build: Callable[[], Any]) -> Any:
    """``build()`` once per network, quantity and device."""
    per_network = _DEVICE_TENSORS.setdefault(net, {})
    key = (what, str(device))
    if key not in per_network:
        per_network[key] = build()
    return per_network[key]


def _levels(
    net: RiverNetwork, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per level: reach indices, upstream edge sources (user index), edge target (local index)."""
    return _cached(net, "levels", device, lambda: _build_levels(net, device))


def _build_levels(
    net: RiverNetwork, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    groups = net.level_groups()
    down = net.downstream_index
    local = np.empty(net.n_reaches, np.int64)
    for idx in groups:  # one vectorised assignment per level
        local[idx] = np.arange(idx.size)
    src_all = np.flatnonzero(down >= 0)
    edge_level = net.levels[down[src_all]]
    srt = np.argsort(edge_level, kind="stable")
    src_all, edge_level = src_all[srt], edge_level[srt]
    bounds = np.searchsorted(edge_level, np.arange(len(groups) + 1))
    out = []
    for lv, idx in enumerate(groups):
        src = src_all[bounds[lv] : bounds[lv + 1]]
        dst = local[down[src]]
        out.append(tuple(torch.as_tensor(a, device=device) for a in (idx, src, dst)))
    return out


def _edges(net: RiverNetwork, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    src = np.flatnonzero(net.downstream_index >= 0)
    return (
        torch.as_tensor(src, device=device),
        torch.as_tensor(net.downstream_index[src], device=device),
    )


def _upstream_sum(q: torch.Tensor, net: RiverNetwork, device: torch.device) -> torch.Tensor:
    src, dst = _cached(net, "edges", device, lambda: _edges(net, device))
    return torch.zeros_like(q).index_add(0, dst, q[src])


def _coefficients(
    q: torch.Tensor, p: dict[str, torch.Tensor], dt: float, leak: bool, lim: np.ndarray
):
    s0 = torch.clamp(p["slope"], min=float(lim[LIM_SMIN]))
    qs, n, w, z = p["q_spatial"], p["n"], p["top_width"], p["side_slope"]
    depth = (q * n * (qs + 1) / (p["p"] * torch.sqrt(s0))) ** (3.0 / (5.0 + 3.0 * qs))
    depth = torch.clamp(depth, min=float(lim[LIM_DMIN]))
    if lim[LIM_GEOM_DDR]:  # DDR's geometry from the depth (docs/routing.md)
        w = p["p"] * depth**qs
        z = torch.clamp(w * qs / (2 * depth), DDR_Z_MIN, DDR_Z_MAX)
    bottom = torch.clamp(w - 2 * z * depth, min=float(lim[LIM_BMIN]))
    radius = (w + bottom) * depth / 2 / (bottom + 2 * depth * torch.sqrt(1 + z * z))
    v = radius ** (2.0 / 3.0) * torch.sqrt(s0) / n
    beta = 5.0 / 3.0
    if lim[LIM_CEL_EXACT]:  # dQ/dA of the trapezoid at this stage (docs/routing.md)
        beta = 5.0 / 3.0 - 4.0 / 3.0 * radius * torch.sqrt(1 + z * z) / w
    cel = beta * torch.clamp(v, float(lim[LIM_VMIN]), float(lim[LIM_VMAX]))
    u = 2 * p["length"] / cel
    if lim[LIM_X_CUNGE]:  # numerical diffusion = physical diffusion (docs/routing.md)
        x_raw = 0.5 - q / (2 * w * s0 * cel * p["length"])
        x = torch.clamp(x_raw, float(lim[LIM_XMIN]), float(lim[LIM_XMAX]))
    else:
        x = p["x"]
    den = u * (1 - x) + dt
    coef = ((dt - u * x) / den, (dt + u * x) / den, (u * (1 - x) - dt) / den, 2 * dt / den)
    zeta_raw = None
    if leak:
        hbank = torch.clamp(w / (2 * z), float(lim[LIM_HBMIN]), float(lim[LIM_HBMAX]))
        zeta_raw = p["K_D"] * w * p["length"] * (depth - hbank + p["d_gw"])
    return coef, zeta_raw


def _hot_start(q0lat: torch.Tensor, levels) -> torch.Tensor:
    acc = q0lat
    for idx, src, dst in levels:
        if src.numel():
            add = torch.zeros(idx.numel(), dtype=acc.dtype, device=acc.device).index_add(
                0, dst, acc[src]
            )
            acc = acc.index_put((idx,), acc[idx] + add)
    return acc


class _Nudger:
    """Nudging of the gauged reaches of each level (``_nudge.nudge_value`` in tensor ops),
    on the kernels' ``da`` arrays (``_mc_kernels._assimilate``), written back by :meth:`store`."""

    def __init__(self, net: RiverNetwork, da: tuple, device: torch.device) -> None:
        gauge_of, obs, last_val, last_time, corr, par = da
        pos = np.flatnonzero(gauge_of >= 0)
        gauge, reach = gauge_of[pos], net.routing_arrays()["order"][pos]
        lev = net.levels[reach]
        self.by_level = {
            int(lv): tuple(torch.as_tensor(a[lev == lv], device=device) for a in (gauge, reach))
            for lv in np.unique(lev)
        }  # fmt: skip
        f64 = {"dtype": torch.float64, "device": device}
        self.obs = torch.as_tensor(obs, **f64)
        self.last_val = torch.as_tensor(last_val, **f64)
        self.last_time = torch.as_tensor(last_time, **f64)
        self.corr = torch.zeros(corr.shape, **f64)
        self.gain, self.decay, self.da = float(par[0]), float(par[1]), da

    def apply(self, new: torch.Tensor, level: int, t: int, dt: float, qmin: float) -> torch.Tensor:
        """``new`` with the gauged reaches of ``level`` nudged at step t."""
        if level not in self.by_level:
            return new
        g, reach = self.by_level[level]
        model = new[reach].detach().to(torch.float64)
        obs, lv, lt, now = self.obs[t, g], self.last_val[g], self.last_time[g], (t + 1) * dt
        has, seen = ~torch.isnan(obs), ~torch.isnan(lv)
        persist = self.gain * torch.exp(-(now - lt) / self.decay) if self.decay > 0 else 0.0 * lt
        weight = torch.where(has, torch.full_like(obs, self.gain), torch.where(seen, persist, 0.0))
        target = torch.where(has, obs, lv)
        q = torch.where(weight == 1.0, target, model + weight * (target - model))
        q = torch.where(has | seen, q.clamp(min=qmin), model)
        self.corr[t, g] = q - model
        self.last_val[g] = torch.where(has, obs, lv)
        self.last_time[g] = torch.where(has, torch.full_like(lt, now), lt)
        return new.index_put((reach,), q.to(new.dtype))

    def store(self) -> None:
        """Write the state and corrections back into the ``da`` arrays."""
        self.da[2][:] = self.last_val.cpu().numpy()
        self.da[3][:] = self.last_time.cpu().numpy()
        self.da[4][:] = self.corr.cpu().numpy()


def _pos_part(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(h > 0, h where positive else 1): a safe argument for √ (no inf·0 gradient)."""
    pos = h > 0
    return pos, torch.where(pos, h, torch.ones_like(h))


def _discharge(hs: torch.Tensor, hx: torch.Tensor, par: torch.Tensor) -> torch.Tensor:
    """``_levelpool.discharge`` of each lake (rows of ``par``), in the same operation order."""
    mxe, we, wc, wl, dl, oe, oc, oa = par[:, 1:9].unbind(1)
    zero = torch.zeros_like(hs)
    pos, ho = _pos_part(hs - oe)
    d = torch.where(pos, oc * oa * torch.sqrt(G2 * ho), zero)
    pos, hw = _pos_part(torch.where(hs <= mxe, hs - we, mxe - we))
    d = d + torch.where(pos, wc * wl * hw * torch.sqrt(hw), zero)
    pos, hx_ = _pos_part(hx - mxe)
    return d + torch.where(pos, wc * wl * dl * hx_ * torch.sqrt(hx_), zero)


def _withdrawal(h: torch.Tensor, par: torch.Tensor) -> torch.Tensor:
    """``_levelpool.withdrawal``: W·(3s² − 2s³), s = (h − Oe)/ramp clamped to [0, 1]."""
    s = ((h - par[:, 6]) / WITHDRAWAL_RAMP_M).clamp(0.0, 1.0)
    return par[:, 9] * (s * s * (3.0 - 2.0 * s))


def _lake_substep(  # noqa: PLR0913, PLR0917 (mirrors _levelpool._substep)
    h: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, tau: torch.Tensor, par: torch.Tensor,
    nwm: bool,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(H, withdrawn volume) after one RK3 sub-step."""
    area = par[:, 0] * KM2
    f2, f3, c3 = (0.33, 0.67, 0.667) if nwm else (1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0)
    k1 = (ia - _discharge(h, h, par) - _withdrawal(h, par)) / area
    h2 = h + tau * k1 / 3.0
    hx2 = h if nwm else h2
    k2 = (ia + (ib - ia) * f2 - _discharge(h2, hx2, par) - _withdrawal(h2, par)) / area
    h3 = h + c3 * (tau * k2)
    hx3 = h if nwm else h3
    k3 = (ia + (ib - ia) * f3 - _discharge(h3, hx3, par) - _withdrawal(h3, par)) / area
    vol = tau * _withdrawal(h, par) / 4.0 + 0.75 * (tau * _withdrawal(h3, par))
    return h + (tau * k1 / 4.0 + 0.75 * (tau * k3)), vol


def _implicit_substep(  # noqa: PLR0917 (mirrors _levelpool._implicit_substep)
    h: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor, tau: torch.Tensor, par: torch.Tensor
) -> torch.Tensor:
    """Backward Euler sub-step: the root x* of F(x) = A(x − h)/τ + D(x) + E(x) − (ia+ib)/2 from
    ``_levelpool`` (floats), returned as x* − F(x*)/F′(x*) with F in torch ops and F′ constant:
    the value is the root (F(x*) ≈ 0) and the gradient is the implicit function theorem's."""
    vals = [x.detach().cpu().numpy() for x in (h, ia, ib, tau, par)]
    roots, slopes = [], []
    for j in range(vals[0].size):
        p = tuple(vals[4][j])
        roots.append(implicit_root(float(vals[0][j]), float(vals[1][j]), float(vals[2][j]),
                                   float(vals[3][j]), p))  # fmt: skip
        slopes.append(slope(roots[-1], p))
    x = torch.tensor(roots, dtype=torch.float64, device=h.device)
    c = par[:, 0] * KM2 / tau
    f = c * (x - h) + _discharge(x, x, par) + _withdrawal(x, par) - 0.5 * (ia + ib)
    return x - f / (c.detach() + torch.tensor(slopes, dtype=torch.float64, device=h.device))


def _inflow_at(i0: torch.Tensor, i1: torch.Tensor, j: int, n: torch.Tensor) -> torch.Tensor:
    mid = i0 + (i1 - i0) * (j / n)
    return torch.where(n == j, i1, mid) if j else i0


def lake_step_torch(  # noqa: PLR0913, PLR0917 (mirrors _levelpool.lake_step)
    h0: torch.Tensor, i0: torch.Tensor, i1: torch.Tensor, dt: float, par: torch.Tensor,
    nwm: bool, nmin: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(H_{t+1}, outflow, withdrawal) of lakes with rows ``par`` (float64), in torch ops; the sub-step
    counts (and the implicit choice) come from ``_levelpool.substep_count`` (not
    differentiated)."""
    hv, i0v, i1v, pv = (x.detach().cpu().numpy() for x in (h0, i0, i1, par))
    counts = np.array([substep_count(float(hv[j]), float(i0v[j]), float(i1v[j]), dt,
                                     tuple(pv[j]), nwm, nmin) for j in range(hv.size)])  # fmt: skip
    n = torch.tensor(np.abs(counts), dtype=torch.float64, device=h0.device)
    implicit = torch.tensor(counts < 0, device=h0.device)
    tau = dt / n
    h = h0
    vol = torch.zeros_like(h0)
    for j in range(int(np.abs(counts).max())):
        ia, ib = _inflow_at(i0, i1, j, n), _inflow_at(i0, i1, j + 1, n)
        hn, v = _lake_substep(h, ia, ib, tau, par, nwm)
        # backward Euler where the step is stiff or RK3 fell through the crest
        # (_levelpool._crosses_crest)
        redo = implicit
        if not nwm:
            oe = par[:, 6]
            redo = redo | ((par[:, 9] > 0) & (hn < oe) & (oe <= h)).detach()
        if bool(redo.any()):
            hi = _implicit_substep(h, ia, ib, tau, par)
            hn, v = torch.where(redo, hi, hn), torch.where(redo, tau * _withdrawal(hi, par), v)
        h = torch.where(n > j, hn, h)
        vol = torch.where(n > j, vol + v, vol)
    wd = vol / dt
    if nwm:
        return h, _discharge(h, h, par), wd
    out = 0.5 * (i0 + i1) - par[:, 0] * KM2 * (h - h0) / dt - wd
    return h, torch.clamp(out, min=0.0), wd


class _Lakes:
    """The lakes of a call in the level loop: per level, the lakes routed there (their local
    index in the level, lake index, reach) and the elevation state."""

    def __init__(self, net: RiverNetwork, lakes: LakeArrays, levels: list, n_t: int) -> None:
        device = levels[0][0].device
        reaches = lakes.reaches
        self.lk = lakes
        self.is_lake = torch.zeros(net.n_reaches, dtype=torch.bool, device=device)
        self.is_lake[torch.as_tensor(reaches, device=device)] = True
        self.by_level: dict[int, tuple[torch.Tensor, ...]] = {}
        for lv, (idx, _, _) in enumerate(levels):
            local = torch.nonzero(self.is_lake[idx]).reshape(-1)
            if local.numel():
                rch = idx[local].cpu().numpy()
                lid = np.searchsorted(reaches, rch, sorter=np.argsort(reaches))
                lid = np.argsort(reaches)[lid]
                self.by_level[lv] = (local, torch.as_tensor(lid, device=device), idx[local],
                                     ~self.is_lake[idx])  # fmt: skip
        self.h = lakes.elevation
        self.hist = [self.h]
        shape = (n_t, lakes.n_lakes)
        self.inflow = torch.zeros(shape, dtype=torch.float64, device=device)
        self.outflow = torch.zeros(shape, dtype=torch.float64, device=device)
        self.withdrawal = torch.zeros(shape, dtype=torch.float64, device=device)
        self.h_next = self.h

    def step(  # noqa: PLR0913, PLR0917 (one level of one step)
        self, lv: int, t: int, y: torch.Tensor, usum: torch.Tensor, vsum: torch.Tensor | None,
        ql: torch.Tensor, dt: float,
    ) -> torch.Tensor:  # fmt: skip
        """``y`` of level ``lv`` with its lakes' outflows in place of the channel update."""
        local, lid, rch, _ = self.by_level[lv]
        qlr = ql[rch].to(torch.float64)
        i0 = usum[rch].to(torch.float64) + qlr
        i1 = qlr if vsum is None else vsum[local].to(torch.float64) + qlr
        h1, out, wd = lake_step_torch(self.h[lid], i0, i1, dt, self.lk.params[lid], self.lk.nwm,
                                      self.lk.substeps)  # fmt: skip
        self.h_next = self.h_next.index_put((lid,), h1)
        self.inflow[t, lid] = (0.5 * (i0 + i1)).detach()
        self.outflow[t, lid] = out.detach()
        self.withdrawal[t, lid] = wd.detach()
        return y.index_put((local,), out.to(y.dtype))

    def end_step(self) -> None:
        self.h = self.h_next
        self.hist.append(self.h)


def route_torch(  # noqa: PLR0913, PLR0917 (mirrors the numba path)
    net: RiverNetwork,
    qlat: torch.Tensor,
    substeps: int,
    q0: torch.Tensor | None,
    params: dict[str, torch.Tensor],
    dt: float,
    leak: bool,
    lim: np.ndarray,
    da: tuple | None = None,
    lakes: LakeArrays | None = None,
) -> tuple[torch.Tensor, ...]:
    """(T+1, N) states and (N,) Q_min clamp volume, by level-scheduled torch ops; with
    ``lakes`` also their (T+1, L) elevations and (T, L) inflows and outflows (a lake reach takes
    its level-pool outflow, not floored, instead of the channel update) and withdrawals.

    ``qlat`` is (R, N), row r driving steps r·substeps … (r+1)·substeps − 1; each parameter is
    (1, N), (R, N) or (T, N), T = R·substeps. ``da``: the nudging arrays of the kernels
    (``_mc_kernels._assimilate``; filled in place), or None."""
    device = qlat.device
    levels = _levels(net, device)
    nudger = None if da is None else _Nudger(net, da, device)
    qmin = float(lim[LIM_QMIN])
    n_t = qlat.shape[0] * substeps
    lk = None if lakes is None else _Lakes(net, lakes, levels, n_t)
    q = torch.clamp(_hot_start(qlat[0], levels) if q0 is None else q0, min=qmin)
    if lk is not None and q0 is not None:  # a given lake outflow is not floored
        q = torch.where(lk.is_lake, q0, q)
    states = [q]
    clamp = torch.zeros(net.n_reaches, dtype=qlat.dtype, device=device)
    for t in range(n_t):
        p = {k: v[t * v.shape[0] // n_t] for k, v in params.items()}
        # a lake reach's own state (its outflow, possibly 0) must not reach the channel
        # physics, whose unused values there would still enter the gradient as 0·inf
        qc = q if lk is None else torch.where(lk.is_lake, torch.ones_like(q), q)
        (c1, c2, c3, c4), zeta_raw = _coefficients(qc, p, dt, leak, lim)
        usum = _upstream_sum(q, net, device)
        inflow = qlat[t // substeps]
        if leak:
            f = inflow + usum
            zeta_raw = torch.where(zeta_raw > f, f, torch.where(zeta_raw < -f, -f, zeta_raw))
            inflow = inflow - zeta_raw
        rhs = c2 * usum + c3 * q + c4 * inflow
        new = rhs
        for lv, (idx, src, dst) in enumerate(levels):
            y = rhs[idx]
            vsum = None
            if src.numel():
                vsum = torch.zeros(idx.numel(), dtype=q.dtype, device=device).index_add(
                    0, dst, new[src]
                )
                y = c1[idx] * vsum + y
            if lk is not None and lv in lk.by_level:
                y = lk.step(lv, t, y, usum, vsum, qlat[t // substeps], dt)
                channel = lk.by_level[lv][3]
                floor = ((qmin - y.detach()).clamp(min=0) * dt) * channel
                clamp = clamp.index_add(0, idx, floor)
                new = new.index_put((idx,), torch.where(channel, torch.clamp(y, min=qmin), y))
            else:
                clamp = clamp.index_add(0, idx, (qmin - y.detach()).clamp(min=0) * dt)
                new = new.index_put((idx,), torch.clamp(y, min=qmin))
            if nudger is not None:
                new = nudger.apply(new, lv, t, dt, qmin)
        q = new
        states.append(q)
        if lk is not None:
            lk.end_step()
    if nudger is not None:
        nudger.store()
    if lk is not None:
        return (torch.stack(states), clamp, torch.stack(lk.hist), lk.inflow, lk.outflow,
                lk.withdrawal)  # fmt: skip
    return torch.stack(states), clamp
