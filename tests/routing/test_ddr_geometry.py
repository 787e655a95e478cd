"""DDR's geometry option (``geometry="ddr"``): W = p·d^q and z = clamp(W·q/(2d), 0.5, 50)
derived from the depth each step. Closed forms, the torch reference backend, finite
differences (gradcheck, float64) and the default mode untouched."""

from __future__ import annotations

import math

import pytest
import torch
from reference import random_network
from routing_inputs import make_inputs

from ddr_pipeline.routing import muskingum_cunge
from ddr_pipeline.routing._physics import ddr_geometry, ddr_geometry_vjp

OPTIONS = [("data", "wide_rectangle"), ("cunge", "exact")]


def test_ddr_geometry_closed_forms_and_vjp() -> None:
    w, z, r, zcl = ddr_geometry(20.0, 0.5, 2.0)
    assert w == pytest.approx(20.0 * math.sqrt(2.0), rel=1e-14)
    assert z == pytest.approx(w * 0.5 / 4.0, rel=1e-14)
    assert r == pytest.approx(math.sqrt(1 + z * z), rel=1e-14)
    assert not zcl
    assert ddr_geometry(200.0, 0.9, 0.01)[1] == 50.0  # upper clamp
    assert ddr_geometry(1.0, 0.01, 1.0)[1] == 0.5  # lower clamp
    x = torch.tensor([20.0, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    p, q, d = x
    wt = p * d**q
    zt = wt * q / (2 * d)
    (0.3 * wt + 0.7 * zt).backward()
    gp, gq, gd = ddr_geometry_vjp(0.3, 0.7, 20.0, 0.5, 2.0, w, False)
    torch.testing.assert_close(torch.tensor([gp, gq, gd], dtype=torch.float64),
                               x.grad, rtol=1e-12, atol=0)  # fmt: skip


@pytest.mark.parametrize(("x_mode", "celerity"), OPTIONS)
def test_torch_backend_matches_numba(x_mode: str, celerity: str) -> None:
    """Values and gradients of the numba engine equal the torch reference (float64, clamps)."""
    net = random_network(16, seed=21)
    qlat, channel, params = make_inputs(16, 10, seed=9, clamps=True, time_varying=True)
    kw = {"v_max": 0.6, "x_mode": x_mode, "celerity": celerity, "geometry": "ddr"}
    grads, outs = [], []
    for backend in ("numba", "torch"):
        p = {k: v.clone().requires_grad_() for k, v in params.items()}
        q = qlat.clone().requires_grad_()
        out = muskingum_cunge(net, q, channel, p, backend=backend, **kw)
        out.sum().backward()
        outs.append(out.detach())
        grads.append({"lateral_inflow": q.grad, **{k: v.grad for k, v in p.items()}})
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-10)
    for name, g in grads[0].items():
        expected = torch.zeros_like(g) if grads[1][name] is None else grads[1][name]
        torch.testing.assert_close(g, expected, rtol=1e-9, atol=1e-10, msg=name)
    assert not grads[0]["top_width"].any() and not grads[0]["side_slope"].any()
    assert grads[0]["p"].abs().max() > 0 and grads[0]["q_spatial"].abs().max() > 0
    plain = muskingum_cunge(net, qlat, channel, params, v_max=0.6, x_mode=x_mode, celerity=celerity)
    assert not torch.equal(plain, outs[0])  # the option changes the physics


@pytest.mark.parametrize(("x_mode", "celerity"), OPTIONS)
@pytest.mark.parametrize("name", ["n", "q_spatial", "p", "slope", "length", "lateral_inflow"])
def test_gradcheck_ddr_geometry(name: str, x_mode: str, celerity: str) -> None:
    n_r, n_t = 5, 6
    net = random_network(n_r, seed=11)
    qlat, channel, params = make_inputs(n_r, n_t, seed=4, time_varying=True)
    q0 = torch.linspace(1.0, 6.0, n_r, dtype=torch.float64)
    x0 = {"lateral_inflow": qlat, **channel, **params}[name].clone().requires_grad_()

    def f(x: torch.Tensor) -> torch.Tensor:
        c = {k: (x if k == name else v) for k, v in channel.items()}
        p = {k: (x if k == name else v) for k, v in params.items()}
        ql = x if name == "lateral_inflow" else qlat
        return muskingum_cunge(net, ql, c, p, initial_state=q0, x_mode=x_mode,
                               celerity=celerity, geometry="ddr")  # fmt: skip

    assert torch.autograd.gradcheck(f, (x0,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_geometry_validated() -> None:
    net = random_network(6, seed=1)
    qlat, channel, params = make_inputs(6, 4, seed=2)
    with pytest.raises(ValueError, match="geometry"):
        muskingum_cunge(net, qlat, channel, params, geometry="leopold")
    with pytest.raises(ValueError, match="leakance"):
        muskingum_cunge(net, qlat, channel, params, geometry="ddr", leakance=True)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_ddr_geometry_needs_no_top_width_or_side_slope(backend: str) -> None:
    """Without ``top_width``/``side_slope`` the ddr mode routes bitwise as with any values of
    them (the step derives both); the learned mode still requires them."""
    net = random_network(12, seed=4)
    qlat, channel, params = make_inputs(12, 6, seed=2, clamps=True)
    kw = {"x_mode": "cunge", "celerity": "exact", "geometry": "ddr", "backend": backend}
    reduced = {k: v for k, v in params.items() if k not in ("top_width", "side_slope")}
    other = {**params, "top_width": params["top_width"] * 7.0, "side_slope": 0.3}
    out = muskingum_cunge(net, qlat, channel, reduced, **kw)
    assert torch.equal(out, muskingum_cunge(net, qlat, channel, params, **kw))
    assert torch.equal(out, muskingum_cunge(net, qlat, channel, other, **kw))
    with pytest.raises(KeyError, match=r"missing routing inputs: \['top_width', 'side_slope'\]"):
        muskingum_cunge(net, qlat, channel, reduced, backend=backend)
