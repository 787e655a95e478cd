"""NWM level-pool lakes in the routing engine: mass balance, parity with NWM's LEVELPOOL_PHYSICS,
gradients (gradcheck, numba adjoint vs the torch reference), chunk continuity, stability of a
tiny lake, bitwise independence of the CPU cut, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference import random_network
from routing_inputs import make_inputs
from test_cuda_kernel import kernel_device  # noqa: F401 (fixture)

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import constants as K
from ddr_pipeline.routing import muskingum_cunge, muskingum_cunge_means
from ddr_pipeline.routing._levelpool import substep_count
from ddr_pipeline.routing.lakes import LAKE_PARAMS, LevelPool
from ddr_pipeline.routing.muskingum_cunge import choose_backend
from ddr_pipeline.routing.nudging import Nudging

F64 = torch.float64
DT = 3600.0

# three lakes: a mid-network lake, a headwater lake and the outlet's lake (network below)
BASE = {
    "area_km2": [0.5, 0.2, 1.0],
    "max_elevation": [10.0, 10.0, 10.0],
    "weir_elevation": [8.0, 8.5, 9.0],
    "weir_coefficient": [0.4, 0.35, 0.4],
    "weir_length": [10.0, 5.0, 20.0],
    "dam_length": [50.0, 40.0, 80.0],
    "orifice_elevation": [5.0, 6.0, 4.0],
    "orifice_coefficient": [0.6, 0.55, 0.6],
    "orifice_area": [1.0, 0.5, 2.0],
}
ELEV = [8.5, 9.0, 9.95]


def _params(base: dict = BASE, grad: bool = False) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=F64, requires_grad=grad) for k, v in base.items()}


def _network() -> tuple[RiverNetwork, np.ndarray]:
    """12 random reaches and the (mid, headwater, outlet) lake reaches."""
    net = random_network(12, seed=3)
    down = net.downstream_index
    n = np.arange(net.n_reaches)
    has_up = np.isin(n, down)
    mid = int(np.flatnonzero((down >= 0) & has_up)[0])
    head = int(np.flatnonzero(~has_up)[0])
    outlet = int(np.flatnonzero((down < 0) & has_up)[0])
    return net, np.array([mid, head, outlet])


def _inputs(t: int = 24, scale: float = 1.0, seed: int = 1):
    net, reaches = _network()
    qlat, channel, params = make_inputs(net.n_reaches, t, seed)
    return net, reaches, qlat * scale, channel, params


def _route(scheme: str = "conservative", backend: str = "numba", scale: float = 8.0, **kw):
    net, reaches, qlat, channel, params = _inputs(scale=scale)
    lakes = LevelPool(reaches, _params(), torch.tensor(ELEV, dtype=F64), scheme=scheme)
    return muskingum_cunge(net, qlat, channel, params, dt=DT, lakes=lakes, backend=backend,
                           return_diagnostics=True, **kw)  # fmt: skip


def _chained_grads(split: bool) -> list[torch.Tensor]:
    """Gradients of one call, or of two calls chained through the end state and elevation."""
    net, reaches, qlat, channel, params = _inputs(t=24, scale=8.0)
    ql = qlat.requires_grad_(True)
    lp, el = _params(grad=True), torch.tensor(ELEV, dtype=F64, requires_grad=True)
    q0 = torch.full((net.n_reaches,), 2.0, dtype=F64, requires_grad=True)

    def call(qq, qi, e):
        return muskingum_cunge(net, qq, channel, params, dt=DT, initial_state=qi,
                               lakes=LevelPool(reaches, lp, e), return_diagnostics=True)  # fmt: skip

    if split:
        a = call(ql[:12], q0, el)
        b = call(ql[12:], a.discharge[-1], a.lakes.final_elevation)
        q = torch.cat([a.discharge, b.discharge[1:]])
        h = torch.cat([a.lakes.elevation, b.lakes.elevation[1:]])
    else:
        r = call(ql, q0, el)
        q, h = r.discharge, r.lakes.elevation
    w = torch.linspace(0, 1, q.numel(), dtype=F64).reshape(q.shape)
    ((q * w).sum() + (h**2).sum()).backward()
    return [ql.grad, q0.grad, el.grad, *(v.grad for v in lp.values())]


def test_gradients_flow_through_chained_calls() -> None:
    """A rollout carrying the end state and elevation between calls (differentiably) has the
    gradients of one call (up to the summation order at the seam)."""
    for a, b in zip(_chained_grads(False), _chained_grads(True), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_conservative_scheme_closes_mass_every_step(backend: str) -> None:
    res = _route(backend=backend)
    lk = res.lakes
    h = lk.elevation
    assert (h.max(0).values > 10.0).any(), "the test should reach the spill"
    # the outflow handed downstream is the reach's state
    assert torch.equal(res.discharge[1:, lk.reaches], lk.outflow)
    store, net_in = lk.storage_change(), lk.net_inflow_volume()
    scale = torch.maximum(lk.inflow, lk.outflow) * lk.dt
    assert float(((store - net_in).abs() / scale).max()) <= 1e-9
    # over the call: final − initial storage = inflow − outflow volume
    total = lk.area_m2 * (h[-1] - h[0]).detach()
    vol = (lk.inflow.sum(0) - lk.outflow.sum(0)) * lk.dt
    assert torch.allclose(total, vol, rtol=1e-9, atol=0.0)


def _nwm_discharge(h: float, hx: float, we: float, maxh: float, wc: float, wl: float,
                   dl: float, oe: float, oc: float, oa: float) -> float:  # fmt: skip
    """NWM's stage discharge (LEVELPOOL_PHYSICS), its branches as written; ``hx`` is the H of
    the overtop test (the stage-start H in NWM)."""
    dh = min(h - we, maxh - we)
    tmp1 = oc * oa * math.sqrt(2.0 * 9.81 * (h - oe)) if h > oe else 0.0
    tmp2 = wc * wl * dh**1.5 if dh > 0 else 0.0
    if hx > maxh:
        return tmp1 + tmp2 + wc * (wl * dl) * (hx - maxh) ** 1.5
    if dh > 0.0:
        return tmp1 + tmp2
    if h > oe:
        return oc * oa * math.sqrt(2.0 * 9.81 * (h - oe))
    return 0.0


def _nwm_levelpool(qi0: float, qi1: float, ql: float, dt: float, h: float, p: dict):
    """One call of NWM's LEVELPOOL_PHYSICS (lake_opt 1), float64: (H, qo1)."""
    ar, we, maxh = p["area_km2"], p["weir_elevation"], p["max_elevation"]
    wc, wl, dl = p["weir_coefficient"], p["weir_length"], p["dam_length"]
    oe, oc, oa = p["orifice_elevation"], p["orifice_coefficient"], p["orifice_area"]
    d = lambda hs: _nwm_discharge(hs, h, we, maxh, wc, wl, dl, oe, oc, oa)  # noqa: E731
    it = qi0
    itdt_3 = qi0 + (qi1 + ql - qi0) * 0.33
    itdt_2_3 = qi0 + (qi1 + ql - qi0) * 0.67
    sap = ar * 1.0e6
    dh1 = (it - d(h)) / sap * dt
    dh2 = (itdt_3 - d(h + dh1 / 3.0)) / sap * dt
    dh3 = (itdt_2_3 - d(h + 0.667 * dh2)) / sap * dt
    h = h + (dh1 / 4.0 + 0.75 * dh3)
    return h, _nwm_discharge(h, h, we, maxh, wc, wl, dl, oe, oc, oa)


def test_nwm_scheme_matches_levelpool_physics() -> None:
    """A single lake (the outlet of a 2-reach chain) driven by a flood hydrograph that fills it
    over the max elevation, against the literal NWM equations above."""
    net = RiverNetwork.from_ids([1, 2], [2, 0])
    n_t = 72
    t = np.arange(n_t)
    flood = 5.0 + 400.0 * np.exp(-(((t - 20.0) / 6.0) ** 2))
    qlat = torch.tensor(np.stack([flood, np.full(n_t, 1.5)], 1), dtype=F64)
    channel = {"length": 2000.0, "slope": 1e-3, "x": 0.2}
    params = {"n": 0.04, "q_spatial": 0.5, "top_width": 20.0, "side_slope": 2.0}
    p = {k: v[0] for k, v in BASE.items()}
    lakes = LevelPool(np.array([1]), {k: torch.tensor([v], dtype=F64) for k, v in p.items()},
                      torch.tensor([8.2], dtype=F64), scheme="nwm")  # fmt: skip
    res = muskingum_cunge(net, qlat, channel, params, dt=DT, lakes=lakes, return_diagnostics=True)
    q_up = res.discharge[:, 0].numpy()
    h, heights, outs = 8.2, [8.2], []
    for k in range(n_t):  # qi0: last step's inflow incl. Q′ (NWM's previous_timestep_inflow)
        h, out = _nwm_levelpool(q_up[k] + 1.5, q_up[k + 1], 1.5, DT, h, p)
        heights.append(h)
        outs.append(out)
    ours_h = res.lakes.elevation[:, 0].detach().numpy()
    assert ours_h.max() > p["max_elevation"]  # the spill branch ran
    np.testing.assert_allclose(ours_h, heights, rtol=1e-6, atol=0.0)
    np.testing.assert_allclose(res.discharge[1:, 1].numpy(), outs, rtol=1e-6, atol=0.0)


def _gradcheck_fn(scheme: str, net, reaches, channel, params, names=tuple(BASE)):  # noqa: PLR0917
    def f(qlat, elev, *lake_p):
        lakes = LevelPool(reaches, dict(zip(names, lake_p, strict=True)), elev,
                          scheme=scheme)  # fmt: skip
        r = muskingum_cunge(net, qlat, channel, params, dt=DT, lakes=lakes,
                            return_diagnostics=True)  # fmt: skip
        return r.discharge[1:].sum(0), r.discharge[-1], r.lakes.final_elevation

    return f


@pytest.mark.parametrize("scheme", ["conservative", "nwm"])
def test_gradcheck_lake_parameters_elevation_and_inflow(scheme: str) -> None:
    net, reaches, qlat, channel, params = _inputs(t=6, scale=20.0)
    inputs = [qlat.requires_grad_(True), torch.tensor(ELEV, dtype=F64, requires_grad=True),
              *_params(grad=True).values()]  # fmt: skip
    f = _gradcheck_fn(scheme, net, reaches, channel, params)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def _grads(
    backend: str, scheme: str, mode: str, withdrawal: list | None = None
) -> list[torch.Tensor]:
    net, reaches, qlat, channel, params = _inputs(t=48, scale=8.0)
    qlat.requires_grad_(True)
    channel = {k: v.clone().requires_grad_(True) for k, v in channel.items()}
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    lp, elev = _params(grad=True), torch.tensor(ELEV, dtype=F64, requires_grad=True)
    if withdrawal is not None:
        lp["withdrawal"] = torch.tensor(withdrawal, dtype=F64, requires_grad=True)
    q0 = torch.full((net.n_reaches,), 2.0, dtype=F64, requires_grad=True)
    lakes = LevelPool(reaches, lp, elev, scheme=scheme, substeps=2)
    opts = {"dt": DT, "lakes": lakes, "backend": backend, "initial_state": q0}
    gen = torch.Generator().manual_seed(4)
    if mode == "dense":
        r = muskingum_cunge(net, qlat, channel, params, return_diagnostics=True, **opts)
        outs = [r.discharge, r.lakes.elevation]
    else:
        obs = np.array([*reaches, 0, 5])
        every = 1 if mode == "means1" else 5
        m = muskingum_cunge_means(net, qlat.reshape(8, 6, -1)[:, 0], channel, params, obs,
                                  substeps=6, checkpoint_every=every, **opts)  # fmt: skip
        outs = [m.means, m.final_state, m.lakes.final_elevation]
    loss = sum((o * torch.rand(o.shape, generator=gen, dtype=F64)).sum() for o in outs)
    loss.backward()
    core = [qlat, q0, elev, *lp.values()]
    channel_leaves = [*channel.values(), *params.values()]
    return [o.detach() for o in outs] + [v.grad for v in core], [v.grad for v in channel_leaves]


@pytest.mark.parametrize("scheme", ["conservative", "nwm"])
@pytest.mark.parametrize("mode", ["dense", "means1", "means5"])
def test_numba_adjoint_matches_torch_reference(scheme: str, mode: str) -> None:
    (ours, ours_ch), (ref, ref_ch) = _grads("numba", scheme, mode), _grads("torch", scheme, mode)
    for a, b in zip(ours, ref, strict=True):  # outputs; Q′, state, elevation, lake parameters
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    for a, b in zip(ours_ch, ref_ch, strict=True):  # channel parameters (unused ones: 0 / None)
        torch.testing.assert_close(a, torch.zeros_like(a) if b is None else b, rtol=1e-9, atol=1e-9)


def test_checkpointed_means_are_bitwise_every_one() -> None:
    a, b = _grads("numba", "conservative", "means1"), _grads("numba", "conservative", "means5")
    for x, y in zip(a[0] + a[1], b[0] + b[1], strict=True):
        assert torch.equal(x, y)


def test_two_calls_carrying_state_equal_one_call_bitwise() -> None:
    net, reaches, qlat, channel, params = _inputs(t=24, scale=8.0)
    q0 = torch.full((net.n_reaches,), 2.0, dtype=F64)

    def call(ql, q_init, elev):
        lakes = LevelPool(reaches, _params(), elev)
        return muskingum_cunge(net, ql, channel, params, dt=DT, initial_state=q_init,
                               lakes=lakes, return_diagnostics=True)  # fmt: skip

    whole = call(qlat, q0, torch.tensor(ELEV, dtype=F64))
    first = call(qlat[:12], q0, torch.tensor(ELEV, dtype=F64))
    second = call(qlat[12:], first.discharge[-1], first.lakes.final_elevation)
    assert torch.equal(torch.cat([first.discharge, second.discharge[1:]]), whole.discharge)
    assert torch.equal(
        torch.cat([first.lakes.elevation, second.lakes.elevation[1:]]), whole.lakes.elevation
    )


def _tiny_lake(area: float, backend: str, scheme: str = "conservative"):
    """One lake of ``area`` km² (the outlet of a 2-reach chain) under 6 h of 500 m³/s, then 6 h
    without inflow, dt = 1 h: outputs and the gradients of every input."""
    net = RiverNetwork.from_ids([1, 2], [2, 0])
    qlat = torch.tensor([[500.0, 0.0]] * 6 + [[0.0, 0.0]] * 6, dtype=F64, requires_grad=True)
    channel = {"length": 1000.0, "slope": 1e-3, "x": 0.2}
    params = {"n": 0.04, "q_spatial": 0.5, "top_width": 20.0, "side_slope": 2.0}
    p = {k: torch.tensor([v[0]], dtype=F64, requires_grad=True) for k, v in BASE.items()}
    p["area_km2"] = torch.tensor([area], dtype=F64, requires_grad=True)
    elev = torch.tensor([9.0], dtype=F64, requires_grad=True)
    res = muskingum_cunge(net, qlat, channel, params, dt=DT, backend=backend,
                          return_diagnostics=True, lakes=LevelPool(np.array([1]), p, elev,
                                                                   scheme=scheme))  # fmt: skip
    out, h = res.discharge[:, 1], res.lakes.elevation[:, 0]
    (out.sum() + h[-1]).backward()
    grads = [qlat.grad, elev.grad, *(v.grad for v in p.values())]
    return out.detach(), h.detach(), res.lakes, grads


@pytest.mark.parametrize(("area", "regime"), [(2.0, 1), (0.05, 20), (0.01, -1), (1e-4, -1)])
def test_stiff_lakes_are_sub_stepped_or_solved_implicitly(area: float, regime: int) -> None:
    """Explicit RK3 with one step would overshoot a 0.01 km² lake by 180 m per hour under
    500 m³/s: the rule takes RK3 sub-steps (regime > 1: at least that many) or, past
    ``SUBSTEPS_MAX``, backward Euler (−1); outflows stay finite and non-negative, the elevation
    below the spill's equilibrium, mass closes, gradients are finite and the numba adjoint
    matches the torch reference."""
    par = (area, *(BASE[k][0] for k in LAKE_PARAMS[1:9]), 0.0)
    n = substep_count(9.5, 500.0, 500.0, DT, par, False, 1)
    assert n == regime if regime <= 1 else n >= regime
    out, h, lk, grads = _tiny_lake(area, "numba")
    assert torch.isfinite(out).all() and (out[1:] >= 0).all() and torch.isfinite(h).all()
    assert float(h.max()) < 12.0  # 500 m³/s spills 1.8 m above the max elevation
    store, net_in = lk.storage_change(), lk.net_inflow_volume()
    assert float((store - net_in).abs().max()) <= 1e-9 * 500.0 * DT
    assert all(torch.isfinite(g).all() for g in grads)
    ref = _tiny_lake(area, "torch")
    torch.testing.assert_close(out, ref[0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(h, ref[1], rtol=1e-9, atol=1e-9)
    for a, b in zip(grads, ref[3], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9)


def test_gradcheck_implicit_lake() -> None:
    net = RiverNetwork.from_ids([1, 2], [2, 0])
    qlat = torch.tensor([[300.0, 1.0]] * 3, dtype=F64, requires_grad=True)
    channel = {"length": 1000.0, "slope": 1e-3, "x": 0.2}
    params = {"n": 0.04, "q_spatial": 0.5, "top_width": 20.0, "side_slope": 2.0}
    lake_p = [torch.tensor([v[0]], dtype=F64, requires_grad=True) for v in BASE.values()]
    lake_p[0] = torch.tensor([1e-3], dtype=F64, requires_grad=True)
    elev = torch.tensor([10.2], dtype=F64, requires_grad=True)
    f = _gradcheck_fn("conservative", net, np.array([1]), channel, params)
    assert torch.autograd.gradcheck(f, [qlat, elev, *lake_p], eps=1e-7, atol=1e-5, rtol=1e-4)


def test_dead_pool_holds_water_without_outflow() -> None:
    net = RiverNetwork.from_ids([1], [0])
    p = _params()
    p = {k: v[:1] for k, v in p.items()}
    res = muskingum_cunge(net, torch.zeros(5, 1, dtype=F64), {"length": 1e3, "slope": 1e-3, "x": 0.2},
                          {"n": 0.04, "q_spatial": 0.5, "top_width": 20.0, "side_slope": 2.0},
                          dt=DT, lakes=LevelPool(np.array([0]), p, torch.tensor([4.0], dtype=F64)),
                          return_diagnostics=True)  # fmt: skip
    assert torch.equal(res.lakes.elevation, torch.full((6, 1), 4.0, dtype=F64))
    assert torch.equal(res.lakes.outflow, torch.zeros(5, 1, dtype=F64))


N_BIG = 300


def _big(threads: int, mode: str) -> list[torch.Tensor]:
    net = random_network(N_BIG, seed=11)
    qlat, channel, params = make_inputs(N_BIG, 48, 5)
    qlat = (qlat * 5).requires_grad_(True)
    down = net.downstream_index
    has_up = np.isin(np.arange(N_BIG), down)
    reaches = np.concatenate([np.flatnonzero(has_up)[::9], np.flatnonzero(~has_up)[::15]])
    n_l = reaches.size
    rng = np.random.default_rng(0)
    lp = {
        k: torch.tensor(rng.choice(v, n_l), dtype=F64, requires_grad=True) for k, v in BASE.items()
    }
    elev = torch.tensor(rng.uniform(8.0, 10.2, n_l), dtype=F64, requires_grad=True)
    lakes = LevelPool(reaches, lp, elev)
    opts = {"dt": DT, "lakes": lakes, "threads": threads}
    gen = torch.Generator().manual_seed(2)
    if mode == "dense":
        r = muskingum_cunge(net, qlat, channel, params, return_diagnostics=True, **opts)
        outs = [r.discharge, r.lakes.elevation]
    else:
        m = muskingum_cunge_means(net, qlat[::24], channel, params, np.array([3, 7, *reaches]),
                                  substeps=24, checkpoint_every=7, **opts)  # fmt: skip
        outs = [m.means, m.final_state, m.lakes.final_elevation]
    sum((o * torch.rand(o.shape, generator=gen, dtype=F64)).sum() for o in outs).backward()
    return [o.detach() for o in outs] + [qlat.grad, elev.grad, *(v.grad for v in lp.values())]


@pytest.mark.parametrize("mode", ["dense", "means7"])
@pytest.mark.usefixtures("small_blocks")
def test_lakes_are_bitwise_independent_of_threads_and_blocks(mode: str) -> None:
    serial = _big(1, mode)
    for threads in (2, 3):
        for a, b in zip(serial, _big(threads, mode), strict=True):
            assert torch.equal(a, b)


def test_no_lakes_is_bitwise_the_routing_without() -> None:
    net, reaches, qlat, channel, params = _inputs()
    plain = muskingum_cunge(net, qlat, channel, params, dt=DT)
    assert torch.equal(plain, muskingum_cunge(net, qlat, channel, params, dt=DT, lakes=None))


def test_nudging_a_lake_reach_nudges_its_outflow() -> None:
    net, reaches, qlat, channel, params = _inputs(scale=8.0)
    obs = np.full((24, 1), np.nan)
    obs[10] = 3.0
    nudging = Nudging(reaches=np.array([reaches[0]]), observations=obs, gain=1.0)
    lakes = LevelPool(reaches, _params(), torch.tensor(ELEV, dtype=F64))
    res = muskingum_cunge(net, qlat, channel, params, dt=DT, lakes=lakes, nudging=nudging,
                          return_diagnostics=True)  # fmt: skip
    assert float(res.discharge[11, reaches[0]]) == 3.0
    assert float(res.lakes.outflow[10, 0]) != 3.0  # the lake's own outflow (H is not corrected)


def _lakes(**change) -> LevelPool:
    _, reaches = _network()
    p = _params()
    kw = {"reaches": reaches, "params": p, "elevation": torch.tensor(ELEV, dtype=F64)}
    for k, v in change.items():
        if k in LAKE_PARAMS:
            p[k] = v
        else:
            kw[k] = v
    return LevelPool(**kw)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"area_km2": torch.tensor([0.5, 0.0, 1.0], dtype=F64)}, r"area_km2 must be > 0.*lake 1"),
        (
            {"weir_coefficient": torch.tensor([0.4, 0.4, -1.0], dtype=F64)},
            r"weir_coefficient.*lake 2",
        ),
        (
            {"orifice_elevation": torch.tensor([11.0, 5.0, 5.0], dtype=F64)},
            r"above max_elevation.*lake 0",
        ),
        (
            {"dam_length": torch.tensor([1.0, math.nan, 1.0], dtype=F64)},
            r"dam_length: non-finite.*lake 1",
        ),
        (
            {"elevation": torch.tensor([1.0, 2.0, math.inf], dtype=F64)},
            r"elevation: non-finite.*lake 2",
        ),
        ({"reaches": np.array([1, 1, 2])}, r"reach index 1 .*holds lakes \[0, 1\]"),
        ({"reaches": np.array([0, 1, 99])}, r"lake 2 has reach index 99 outside"),
        ({"scheme": "implicit"}, "scheme"),
        ({"substeps": 0}, "substeps"),
    ],
)
def test_invalid_lakes_are_refused_naming_the_lake(change: dict, match: str) -> None:
    net, _, qlat, channel, params = _inputs()
    with pytest.raises((ValueError, IndexError), match=match):
        muskingum_cunge(net, qlat, channel, params, lakes=_lakes(**change))


def test_missing_lake_parameter_is_refused() -> None:
    net, reaches, qlat, channel, params = _inputs()
    p = _params()
    del p["dam_length"]
    with pytest.raises(KeyError, match="dam_length"):
        muskingum_cunge(net, qlat, channel, params,
                        lakes=LevelPool(reaches, p, torch.tensor(ELEV, dtype=F64)))  # fmt: skip


def _lake_run(  # noqa: PLR0913, PLR0917
    backend: str, device: torch.device, scheme: str, mode: str, area_scale: float,
    withdrawal: bool = False,
):  # fmt: skip
    """Outputs and gradients of every input with three lakes (areas × ``area_scale``; W > 0
    with ``withdrawal``)."""
    net, reaches, qlat, channel, params = _inputs(t=12, scale=8.0)
    base = {**BASE, "area_km2": [a * area_scale for a in BASE["area_km2"]]}
    elev = ELEV
    if withdrawal:  # and the pools start half-way up the ramp
        base["withdrawal"] = W_ON
        elev = [oe + 0.5 for oe in BASE["orifice_elevation"]]
    lp = {k: v.to(device).requires_grad_(True) for k, v in _params(base).items()}
    elev = torch.tensor(elev, dtype=F64, device=device, requires_grad=True)
    ql = qlat.to(device).requires_grad_(True)
    n = params["n"].to(device).requires_grad_(True)
    q0 = torch.full((net.n_reaches,), 2.0, dtype=F64, device=device, requires_grad=True)
    p = {**{k: v.to(device) for k, v in params.items()}, "n": n}
    ch = {k: v.to(device) for k, v in channel.items()}
    opts = {"dt": DT, "backend": backend, "initial_state": q0,
            "lakes": LevelPool(reaches, lp, elev, scheme=scheme)}  # fmt: skip
    if mode == "dense":
        r = muskingum_cunge(net, ql, ch, p, return_diagnostics=True, **opts)
        outs, lk = [r.discharge, r.lakes.elevation], r.lakes
    else:
        m = muskingum_cunge_means(net, ql.reshape(4, 3, -1)[:, 0], ch, p,
                                  np.array([*reaches, 0]), substeps=3, **opts)  # fmt: skip
        outs, lk = [m.means, m.final_state, m.lakes.final_elevation], m.lakes
    gen = torch.Generator().manual_seed(4)
    w = [torch.rand(o.shape, generator=gen, dtype=F64).to(device) for o in outs]
    sum((o * wo).sum() for o, wo in zip(outs, w, strict=True)).backward()
    leaves = [ql, q0, n, elev, *lp.values()]
    return ([o.detach().cpu() for o in outs] + [lk.outflow.cpu(), lk.withdrawal.cpu()]
            + [v.grad.cpu() for v in leaves])  # fmt: skip


@pytest.mark.usefixtures("cuda_small_blocks")
@pytest.mark.parametrize(
    ("scheme", "mode", "area_scale", "withdrawal"),
    [
        ("conservative", "dense", 1.0, False),
        ("nwm", "means", 1.0, False),
        ("conservative", "means", 0.01, False),
        ("conservative", "dense", 0.01, True),
    ],
)
def test_cuda_kernels_route_lakes_like_numba(  # noqa: PLR0913, PLR0917
    kernel_device: torch.device,  # noqa: F811 (the fixture of test_cuda_kernel)
    scheme: str, mode: str, area_scale: float, withdrawal: bool,
) -> None:  # fmt: skip
    """The CUDA kernels (the simulator in CI) against the numba engine: values and gradients of
    every lake input, blocks of 5 reaches (lakes in several blocks); ``area_scale`` 0.01 puts a
    lake in the implicit regime; ``withdrawal``: W > 0 (the lakes draw into the ramp)."""
    ref = _lake_run("numba", torch.device("cpu"), scheme, mode, area_scale, withdrawal)
    got = _lake_run("cuda", kernel_device, scheme, mode, area_scale, withdrawal)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_float32_storage_keeps_elevation_in_float64() -> None:
    net, reaches, qlat, channel, params = _inputs(scale=8.0)
    lakes = LevelPool(reaches, _params(), torch.tensor(ELEV, dtype=torch.float32))
    r32 = muskingum_cunge(net, qlat.float(), channel, params, dt=DT, lakes=lakes,
                          return_diagnostics=True)  # fmt: skip
    r64 = _route(scale=8.0)
    assert r32.discharge.dtype == torch.float32 and r32.lakes.elevation.dtype == F64
    torch.testing.assert_close(r32.lakes.elevation, r64.lakes.elevation, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r32.discharge.double(), r64.discharge, rtol=1e-4, atol=1e-4)


def test_auto_routes_lakes_on_the_numba_engine_until_verified_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cuda = torch.device("cuda")
    monkeypatch.setattr(K, "CUDA_KERNEL_VERIFIED", True)
    monkeypatch.setattr(K, "CUDA_LAKES_VERIFIED", False)
    assert choose_backend("auto", cuda) == "cuda"
    assert choose_backend("auto", cuda, lakes=True) == "numba"
    assert choose_backend("cuda", cuda, lakes=True) == "cuda"
    monkeypatch.setattr(K, "CUDA_LAKES_VERIFIED", True)
    assert choose_backend("auto", cuda, lakes=True) == "cuda"


# --- withdrawal: water taken out of the network from a lake's storage -------------------------

W_ON = [3.0, 1.0, 5.0]


def _drawdown(backend: str, area: float = 0.5, w: float = 20.0, scheme: str = "conservative"):
    """One headwater lake (orifice crest = dead pool at 5 m) withdrawing ``w`` m³/s under
    2 m³/s for 2 days, then 2 days without inflow: it draws down to the dead pool. Outputs and
    the gradients of every input."""
    net = RiverNetwork.from_ids([1], [0])
    qlat = torch.tensor([[2.0]] * 48 + [[0.0]] * 48, dtype=F64, requires_grad=True)
    channel = {"length": 1000.0, "slope": 1e-3, "x": 0.2}
    params = {"n": 0.04, "q_spatial": 0.5, "top_width": 20.0, "side_slope": 2.0}
    p = {k: torch.tensor([v[0]], dtype=F64, requires_grad=True) for k, v in BASE.items()}
    p["area_km2"] = torch.tensor([area], dtype=F64, requires_grad=True)
    p["withdrawal"] = torch.tensor([w], dtype=F64, requires_grad=True)
    elev = torch.tensor([8.5], dtype=F64, requires_grad=True)
    res = muskingum_cunge(net, qlat, channel, params, dt=DT, backend=backend,
                          return_diagnostics=True, lakes=LevelPool(np.array([0]), p, elev,
                                                                   scheme=scheme))  # fmt: skip
    (res.discharge[:, 0].sum() + res.lakes.elevation[-1, 0]).backward()
    grads = [qlat.grad, elev.grad, *(v.grad for v in p.values())]
    return res.discharge[:, 0].detach(), res.lakes, grads


def _assert_mass_closes(lk) -> None:
    store, net_in = lk.storage_change(), lk.net_inflow_volume()
    scale = (lk.inflow + lk.outflow + lk.withdrawal) * lk.dt
    # at rest at the crest the volumes fall below the resolution of A·H (float64's ulp of H)
    ulp = lk.area_m2 * lk.elevation.detach()[1:].abs() * torch.finfo(F64).eps
    assert bool(((store - net_in).abs() <= 1e-9 * scale + 4.0 * ulp).all())


@pytest.mark.parametrize(("area", "regime"), [(0.5, 1), (1e-3, -1)])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_withdrawal_closes_mass_and_stops_at_the_dead_pool(
    backend: str, area: float, regime: int
) -> None:
    """RK3 (0.5 km²) and backward Euler (1e-3 km², far stiffer than the step): A·ΔH = (I − O −
    W_step)·Δt every step; the withdrawal runs at W above the ramp, never exceeds it, and stops
    as the lake reaches the orifice crest, which the storage never passes."""
    par = (area, *(BASE[k][0] for k in LAKE_PARAMS[1:9]), 20.0)
    assert (substep_count(8.5, 2.0, 2.0, DT, par, False, 1) < 0) == (regime < 0)
    out, lk, grads = _drawdown(backend, area)
    h, wd, oe = lk.elevation.detach()[:, 0], lk.withdrawal[:, 0], BASE["orifice_elevation"][0]
    _assert_mass_closes(lk)
    assert float(h.min()) >= oe - 1e-12  # not below the dead pool (up to rounding)
    assert float(h[-1]) < oe + 0.1  # it got there
    assert float(wd.max()) <= 20.0 and float(wd.min()) >= 0.0
    if regime > 0:
        assert float(wd[0]) == 20.0  # full rate above the ramp
    assert float(wd[-1]) < 0.05 and float(out[-1]) < 0.05  # stops at the dead pool
    assert torch.equal(lk.outflow[:, 0], out[1:])  # the discharge only goes downstream
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("area", [0.5, 1e-3])
def test_withdrawal_drawdown_numba_matches_torch_reference(area: float) -> None:
    """Near the crest the orifice's √ head amplifies rounding (its slope is unbounded), hence
    the looser tolerances than elsewhere."""
    out, lk, grads = _drawdown("numba", area)
    ref_out, ref_lk, ref_grads = _drawdown("torch", area)
    torch.testing.assert_close(out, ref_out, rtol=1e-9, atol=1e-8)
    for a, b in [(lk.elevation, ref_lk.elevation), (lk.withdrawal, ref_lk.withdrawal)]:
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-9, atol=1e-8)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("scheme", ["conservative", "nwm"])
def test_gradcheck_with_withdrawal(scheme: str) -> None:
    """W > 0 at all three lakes of the network (all inputs), and a lake inside the ramp (its
    r′(H) path)."""
    net, reaches, qlat, channel, params = _inputs(t=6, scale=20.0)
    names = (*BASE, "withdrawal")
    inputs = [qlat.requires_grad_(True), torch.tensor(ELEV, dtype=F64, requires_grad=True),
              *_params(grad=True).values(), torch.tensor(W_ON, dtype=F64, requires_grad=True)]  # fmt: skip
    f = _gradcheck_fn(scheme, net, reaches, channel, params, names)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
    net = RiverNetwork.from_ids([1, 2], [2, 0])
    qlat = torch.tensor([[1.0, 0.5]] * 6, dtype=F64, requires_grad=True)
    channel = {"length": 1000.0, "slope": 1e-3, "x": 0.2}
    params = {"n": 0.04, "q_spatial": 0.5, "top_width": 20.0, "side_slope": 2.0}
    lake_p = [torch.tensor([v[0]], dtype=F64, requires_grad=True) for v in BASE.values()]
    lake_p[0] = torch.tensor([0.02], dtype=F64, requires_grad=True)
    lake_p.append(torch.tensor([4.0], dtype=F64, requires_grad=True))
    elev = torch.tensor([5.6], dtype=F64, requires_grad=True)  # 0.6 m into the 1 m ramp
    f = _gradcheck_fn(scheme, net, np.array([1]), channel, params, names)
    assert torch.autograd.gradcheck(f, [qlat, elev, *lake_p], eps=1e-7, atol=1e-5, rtol=1e-4)


def test_gradcheck_implicit_lake_with_withdrawal() -> None:
    """Backward Euler (a 2e-4 km² lake) with the pool inside the ramp."""
    net = RiverNetwork.from_ids([1, 2], [2, 0])
    qlat = torch.tensor([[3.0, 1.0]] * 3, dtype=F64, requires_grad=True)
    channel = {"length": 1000.0, "slope": 1e-3, "x": 0.2}
    params = {"n": 0.04, "q_spatial": 0.5, "top_width": 20.0, "side_slope": 2.0}
    lake_p = [torch.tensor([v[0]], dtype=F64, requires_grad=True) for v in BASE.values()]
    lake_p[0] = torch.tensor([2e-4], dtype=F64, requires_grad=True)
    lake_p.append(torch.tensor([6.0], dtype=F64, requires_grad=True))
    par = tuple(float(v.detach()) for v in lake_p)
    assert substep_count(5.5, 4.0, 4.0, DT, par, False, 1) < 0
    elev = torch.tensor([5.5], dtype=F64, requires_grad=True)
    f = _gradcheck_fn("conservative", net, np.array([1]), channel, params, (*BASE, "withdrawal"))
    assert torch.autograd.gradcheck(f, [qlat, elev, *lake_p], eps=1e-7, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("scheme", ["conservative", "nwm"])
@pytest.mark.parametrize("mode", ["dense", "means5"])
def test_withdrawal_numba_adjoint_matches_torch_reference(scheme: str, mode: str) -> None:
    (ours, ours_ch), (ref, ref_ch) = (_grads(b, scheme, mode, W_ON) for b in ("numba", "torch"))
    for a, b in zip(ours + ours_ch, ref + ref_ch, strict=True):
        torch.testing.assert_close(a, torch.zeros_like(a) if b is None else b, rtol=1e-9,
                                   atol=1e-9)  # fmt: skip


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_zero_withdrawal_is_bitwise_a_lake_without(backend: str) -> None:
    """An explicit W = 0 routes bitwise like the parameters without the key (the engine without
    withdrawal), gradients included; dL/dW there is the (finite) sensitivity to a withdrawal."""
    for scheme in ("conservative", "nwm"):
        base, base_ch = _grads(backend, scheme, "dense")
        zero, zero_ch = _grads(backend, scheme, "dense", [0.0, 0.0, 0.0])
        gw = zero.pop()
        assert torch.isfinite(gw).all() and bool((gw != 0).any())
        for a, b in zip(base + base_ch, zero + zero_ch, strict=True):
            assert (a is None and b is None) or torch.equal(a, b)
    res = _route(backend=backend)
    assert torch.equal(res.lakes.withdrawal, torch.zeros_like(res.lakes.outflow))
