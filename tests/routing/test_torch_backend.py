"""The level-scheduled torch backend (only when requested) equals the numba path."""

from __future__ import annotations

import pytest
import torch
from reference import random_network
from routing_inputs import make_inputs

from ddr_pipeline.routing import muskingum_cunge


def _run(backend: str, net, qlat, channel, params, **kw):
    c = {k: v.clone().requires_grad_() for k, v in channel.items()}
    p = {k: v.clone().requires_grad_() for k, v in params.items()}
    q = qlat.clone().requires_grad_()
    res = muskingum_cunge(net, q, c, p, backend=backend, return_diagnostics=True, **kw)
    w = torch.linspace(
        0.1, 1.0, res.discharge.numel(), dtype=res.discharge.dtype, device=res.discharge.device
    )
    (res.discharge * w.reshape(res.discharge.shape)).sum().backward()
    grads = {k: v.grad for k, v in {**c, **p, "lateral_inflow": q}.items()}
    return res, grads


@pytest.mark.parametrize("leakance", [False, True])
@pytest.mark.parametrize("time_varying", [False, True])
def test_torch_backend_matches_numba(leakance: bool, time_varying: bool) -> None:
    net = random_network(16, seed=21)
    qlat, channel, params = make_inputs(16, 10, seed=9, clamps=True, time_varying=time_varying)
    kw = {"leakance": leakance, "v_max": 0.6}
    r_nb, g_nb = _run("numba", net, qlat, channel, params, **kw)
    r_t, g_t = _run("torch", net, qlat, channel, params, **kw)
    torch.testing.assert_close(r_t.discharge, r_nb.discharge, rtol=0, atol=1e-10)
    torch.testing.assert_close(r_t.clamp_volume, r_nb.clamp_volume, rtol=1e-10, atol=1e-8)
    for name, g in g_nb.items():
        other = g_t[name] if g_t[name] is not None else torch.zeros_like(g)
        torch.testing.assert_close(other, g, rtol=1e-9, atol=1e-10, msg=name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_cuda_tensors_match_cpu(backend: str) -> None:
    """``auto`` routes CUDA tensors with the CUDA kernels (device policy) and returns CUDA
    tensors; ``torch`` runs the level-scheduled path on the GPU."""
    net = random_network(40, seed=2)
    qlat, channel, params = make_inputs(40, 24, seed=3, dtype=torch.float64)
    cpu = muskingum_cunge(net, qlat, channel, params, leakance=True)
    cuda = lambda d: {k: v.cuda() for k, v in d.items()}  # noqa: E731
    gpu = muskingum_cunge(
        net, qlat.cuda(), cuda(channel), cuda(params), leakance=True, backend=backend
    )
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)
    q = qlat.cuda().requires_grad_()
    muskingum_cunge(net, q, cuda(channel), cuda(params), backend=backend).sum().backward()
    assert q.grad.is_cuda and torch.isfinite(q.grad).all()
