"""The compiled forward/adjoint equal a slow obviously-correct reference (float64, 1e-10)."""

from __future__ import annotations

import pytest
import torch
from reference import random_network, route_reference
from routing_inputs import make_inputs

from ddr_pipeline.routing import muskingum_cunge


def _leaves(channel: dict, params: dict, qlat: torch.Tensor):
    c = {k: v.clone().requires_grad_() for k, v in channel.items()}
    p = {k: v.clone().requires_grad_() for k, v in params.items()}
    return c, p, qlat.clone().requires_grad_()


def _grads(c: dict, p: dict, q: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {
        k: (v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in {**c, **p}.items()
    }
    out["lateral_inflow"] = q.grad
    return out


@pytest.mark.parametrize("leakance", [False, True])
@pytest.mark.parametrize("time_varying", [False, True])
@pytest.mark.parametrize("hot", [True, False])
def test_matches_reference_with_clamps(leakance: bool, time_varying: bool, hot: bool) -> None:
    n, t = 11, 14
    net = random_network(n, seed=3)
    qlat, channel, params = make_inputs(n, t, seed=5, time_varying=time_varying, clamps=True)
    q0 = None if hot else torch.linspace(0.0, 4.0, n, dtype=torch.float64)
    kw = {"leakance": leakance, "v_max": 0.6}
    res = muskingum_cunge(
        net, qlat, channel, params, initial_state=q0, return_diagnostics=True, **kw
    )
    ref, clamp_vol = route_reference(net, qlat, channel, params, initial_state=q0, **kw)
    torch.testing.assert_close(res.discharge, ref, rtol=0, atol=1e-10)
    assert clamp_vol > 0  # the Q_min floor fired
    assert res.clamp_volume_total == pytest.approx(clamp_vol, rel=1e-10)

    weights = torch.rand(t + 1, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c, p, q = _leaves(channel, params, qlat)
    q0l = None if hot else q0.clone().requires_grad_()
    (muskingum_cunge(net, q, c, p, initial_state=q0l, **kw) * weights).sum().backward()
    fast = _grads(c, p, q)
    fast_q0 = None if hot else q0l.grad
    c, p, q = _leaves(channel, params, qlat)
    q0r = None if hot else q0.clone().requires_grad_()
    (route_reference(net, q, c, p, initial_state=q0r, **kw)[0] * weights).sum().backward()
    slow = _grads(c, p, q)
    for name, g in slow.items():
        torch.testing.assert_close(fast[name], g, rtol=1e-9, atol=1e-10, msg=f"gradient of {name}")
    if not hot:
        torch.testing.assert_close(fast_q0, q0r.grad, rtol=1e-9, atol=1e-10)


def test_float32_close_to_float64() -> None:
    n, t = 30, 48
    net = random_network(n, seed=8)
    qlat, channel, params = make_inputs(n, t, seed=2)
    q64 = muskingum_cunge(net, qlat, channel, params)
    to32 = {k: v.float() for k, v in params.items()}
    q32 = muskingum_cunge(net, qlat.float(), {k: v.float() for k, v in channel.items()}, to32)
    assert q32.dtype == torch.float32
    torch.testing.assert_close(q32.double(), q64, rtol=1e-5, atol=1e-5)
