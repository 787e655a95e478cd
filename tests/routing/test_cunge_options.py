"""Cunge physics options (``x_mode="cunge"``, ``celerity="exact"``): closed forms, the slow
reference, finite differences (gradcheck) and the torch backend."""

from __future__ import annotations

import math

import pytest
import torch
from reference import random_network, route_reference
from routing_inputs import make_inputs

from ddr_pipeline.routing import muskingum_cunge
from ddr_pipeline.routing._physics import celerity_factor, cunge_x

OPTIONS = [("cunge", "wide_rectangle"), ("data", "exact"), ("cunge", "exact")]


def test_exact_celerity_closed_forms() -> None:
    """β = 4/3 for a triangle (B = 0), → 5/3 for a wide rectangle, 5/3 without the option."""
    z, d = 2.0, 1.5
    r = math.sqrt(1 + z * z)
    w = 2 * z * d  # triangle: bottom width 0
    rad = (z * d * d) / (2 * d * r)
    assert celerity_factor(rad, r, w, True) == pytest.approx(4.0 / 3.0, rel=1e-12)
    w, d = 500.0, 0.5  # wide rectangle: R ≈ d << W
    assert celerity_factor(d, 1.0, w, True) == pytest.approx(5.0 / 3.0, abs=2e-3)
    assert celerity_factor(d, 1.0, w, False) == 5.0 / 3.0


def test_cunge_x_matches_physical_diffusion() -> None:
    """c·L·(1/2 − X) = Q/(2·W·S0) where unclamped; X → 1/2 as Q → 0; clamped at 0 when diffusive."""
    q, w, s0, c, length = 12.0, 20.0, 1e-3, 1.2, 4000.0
    x, phi, clamped = cunge_x(q, w, s0, c, length, 0.0, 0.5)
    assert not clamped and 0.0 < x < 0.5
    assert c * length * (0.5 - x) == pytest.approx(q / (2 * w * s0), rel=1e-12)
    assert phi == pytest.approx(0.5 - x, rel=1e-12)
    assert cunge_x(1e-9, w, s0, c, length, 0.0, 0.5)[0] == pytest.approx(0.5)
    x, _, clamped = cunge_x(1e4, w, 1e-4, c, 100.0, 0.0, 0.5)
    assert clamped and x == 0.0


@pytest.mark.parametrize(("x_mode", "celerity"), OPTIONS)
def test_options_match_reference(x_mode: str, celerity: str) -> None:
    """Values and every gradient equal the slow autograd reference (float64, clamps active)."""
    n, t = 11, 12
    net = random_network(n, seed=3)
    qlat, channel, params = make_inputs(n, t, seed=5, time_varying=True, clamps=True)
    kw = {"leakance": True, "v_max": 0.6, "x_mode": x_mode, "celerity": celerity}
    weights = torch.rand(t + 1, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    results = []
    for route in (muskingum_cunge, lambda *a, **k: route_reference(*a, **k)[0]):
        c = {k: v.clone().requires_grad_() for k, v in channel.items()}
        p = {k: v.clone().requires_grad_() for k, v in params.items()}
        q = qlat.clone().requires_grad_()
        out = route(net, q, c, p, **kw)
        (out * weights).sum().backward()
        grads = {k: v.grad for k, v in {**c, **p, "lateral_inflow": q}.items()}
        results.append((out.detach(), grads))
    (fast, g_fast), (slow, g_slow) = results
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-10)
    for name, g in g_slow.items():
        expected = torch.zeros_like(g_fast[name]) if g is None else g
        torch.testing.assert_close(g_fast[name], expected, rtol=1e-9, atol=1e-10, msg=name)
    if x_mode == "cunge":  # the channel's X is not used
        assert not g_fast["x"].any()


@pytest.mark.parametrize(
    "name",
    ["length", "slope", "n", "q_spatial", "top_width", "side_slope", "lateral_inflow",
     "initial_state"],
)  # fmt: skip
def test_gradcheck_cunge_exact(name: str) -> None:
    """Finite differences of the Cunge-X / exact-celerity engine (time-varying n, leakance on)."""
    n_r, n_t = 5, 6
    net = random_network(n_r, seed=11)
    qlat, channel, params = make_inputs(n_r, n_t, seed=4, time_varying=True)
    q0 = torch.linspace(1.0, 6.0, n_r, dtype=torch.float64)
    x0 = {"lateral_inflow": qlat, "initial_state": q0, **channel, **params}[name].clone()
    x0.requires_grad_()

    def f(x: torch.Tensor) -> torch.Tensor:
        c = {k: (x if k == name else v) for k, v in channel.items()}
        p = {k: (x if k == name else v) for k, v in params.items()}
        ql = x if name == "lateral_inflow" else qlat
        init = x if name == "initial_state" else q0
        return muskingum_cunge(
            net, ql, c, p, initial_state=init, leakance=True, x_mode="cunge", celerity="exact"
        )

    assert torch.autograd.gradcheck(f, (x0,), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("x_mode", "celerity"), OPTIONS)
def test_torch_backend_matches_numba(x_mode: str, celerity: str) -> None:
    net = random_network(16, seed=21)
    qlat, channel, params = make_inputs(16, 10, seed=9, clamps=True, time_varying=True)
    kw = {"leakance": True, "v_max": 0.6, "x_mode": x_mode, "celerity": celerity}
    grads = []
    outs = []
    for backend in ("numba", "torch"):
        p = {k: v.clone().requires_grad_() for k, v in params.items()}
        q = qlat.clone().requires_grad_()
        out = muskingum_cunge(net, q, channel, p, backend=backend, **kw)
        out.sum().backward()
        outs.append(out.detach())
        grads.append({"lateral_inflow": q.grad, **{k: v.grad for k, v in p.items()}})
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-10)
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-9, atol=1e-10, msg=name)


def test_cunge_x_needs_no_channel_x_and_options_are_validated() -> None:
    net = random_network(6, seed=1)
    qlat, channel, params = make_inputs(6, 4, seed=2)
    without_x = {k: v for k, v in channel.items() if k != "x"}
    a = muskingum_cunge(net, qlat, without_x, params, x_mode="cunge")
    b = muskingum_cunge(net, qlat, channel, params, x_mode="cunge")
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(KeyError, match="x"):
        muskingum_cunge(net, qlat, without_x, params)
    with pytest.raises(ValueError, match="x_mode"):
        muskingum_cunge(net, qlat, channel, params, x_mode="fixed")
    with pytest.raises(ValueError, match="celerity"):
        muskingum_cunge(net, qlat, channel, params, celerity="5/3")
    with pytest.raises(ValueError, match="x_min"):
        muskingum_cunge(net, qlat, channel, params, x_mode="cunge", x_min=0.4, x_max=0.3)
