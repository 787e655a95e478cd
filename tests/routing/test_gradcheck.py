"""torch.autograd.gradcheck (float64) of the adjoint for every differentiable input, away from kinks."""

from __future__ import annotations

import pytest
import torch
from reference import random_network
from routing_inputs import make_inputs

from ddr_pipeline.routing import muskingum, muskingum_cunge

N, T = 5, 6
NAMES = ["length", "slope", "x", "n", "q_spatial", "p", "top_width", "side_slope", "K_D", "d_gw"]


def _setup(time_varying: bool):
    net = random_network(N, seed=11)
    qlat, channel, params = make_inputs(N, T, seed=4, time_varying=time_varying)
    return net, qlat, channel, params


@pytest.mark.parametrize("time_varying", [False, True])
@pytest.mark.parametrize("name", [*NAMES, "lateral_inflow", "initial_state"])
def test_gradcheck_each_input(name: str, time_varying: bool) -> None:
    net, qlat, channel, params = _setup(time_varying)
    q0 = torch.linspace(1.0, 6.0, N, dtype=torch.float64)
    x0 = {"lateral_inflow": qlat, "initial_state": q0, **channel, **params}[name].clone()
    x0.requires_grad_()
    hot = name == "lateral_inflow"  # gradients through the hot start too

    def f(x: torch.Tensor) -> torch.Tensor:
        c = {k: (x if k == name else v) for k, v in channel.items()}
        p = {k: (x if k == name else v) for k, v in params.items()}
        ql = x if name == "lateral_inflow" else qlat
        init = None if hot else (x if name == "initial_state" else q0)
        return muskingum_cunge(net, ql, c, p, initial_state=init, leakance=True)

    eps = 1e-10 if name == "K_D" else 1e-6  # K_D ~ 1e-9 1/s must stay >= 0
    assert torch.autograd.gradcheck(f, (x0,), eps=eps, atol=1e-6, rtol=1e-5)


def test_gradcheck_muskingum_fixed() -> None:
    net = random_network(N, seed=2)
    g = torch.Generator().manual_seed(0)
    qext = torch.rand(4, N, generator=g, dtype=torch.float64).requires_grad_()
    q0 = torch.rand(N, generator=g, dtype=torch.float64).requires_grad_()
    k = (3000 + 6000 * torch.rand(N, generator=g, dtype=torch.float64)).requires_grad_()
    x = (0.1 + 0.3 * torch.rand(N, generator=g, dtype=torch.float64)).requires_grad_()

    def f(qe, q_init, kk, xx):
        r = muskingum(net, qe, k=kk, x=xx, dt=900.0, substeps=3, initial_state=q_init)
        return r.interval_mean, r.final_state

    assert torch.autograd.gradcheck(f, (qext, q0, k, x), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradients_reach_every_parameter() -> None:
    """One backward gives finite, non-zero gradients to all parameters, inflow and initial state."""
    net, qlat, channel, params = _setup(True)
    leaves = {k: v.clone().requires_grad_() for k, v in {**channel, **params}.items()}
    ql = qlat.clone().requires_grad_()
    q0 = torch.full((N,), 2.0, dtype=torch.float64, requires_grad=True)
    c = {k: leaves[k] for k in channel}
    p = {k: leaves[k] for k in params}
    muskingum_cunge(net, ql, c, p, initial_state=q0, leakance=True).sum().backward()
    for name, v in {**leaves, "lateral_inflow": ql, "initial_state": q0}.items():
        assert v.grad is not None and torch.isfinite(v.grad).all(), name
        assert v.grad.abs().sum() > 0, name
