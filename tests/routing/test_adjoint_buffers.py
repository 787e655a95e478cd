"""The lean backward (broadcast output gradient, storage-dtype gradient buffers, only the requested
gradients, packed parameters kept from the forward) gives exactly the gradients of the dense path."""

from __future__ import annotations

import pytest
import torch
from reference import random_network
from routing_inputs import make_inputs

from ddr_pipeline.routing import muskingum_cunge

N, T = 30, 12


def _grads(dtype: torch.dtype, *, dense: bool, qlat_grad: bool = True, clamps: bool = True):
    net = random_network(N, seed=7)
    qlat, channel, params = make_inputs(N, T, seed=3, time_varying=True, clamps=clamps, dtype=dtype)
    qlat.requires_grad_(qlat_grad)
    leaves = {k: v.clone().requires_grad_() for k, v in {**channel, **params}.items()}
    c = {k: leaves[k] for k in channel}
    p = {k: leaves[k] for k in params}
    out = muskingum_cunge(net, qlat, c, p, leakance=True)
    # dense: a materialised all-ones gradient; otherwise .sum() gives a stride-0 broadcast one
    loss = (out * torch.ones_like(out)).sum() if dense else out.sum()
    loss.backward()
    grads = {k: v.grad for k, v in leaves.items()}
    if qlat_grad:
        grads["lateral_inflow"] = qlat.grad
    return grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_broadcast_output_gradient_matches_dense(dtype: torch.dtype) -> None:
    a, b = _grads(dtype, dense=False), _grads(dtype, dense=True)
    for k in a:
        assert a[k].dtype == dtype, k
        assert torch.equal(a[k], b[k]), k


def test_float32_gradients_are_float32_and_finite() -> None:
    """Gradients are stored in the storage dtype (no float64 (T, N) buffers handed back)."""
    g32 = _grads(torch.float32, dense=False)
    for k, g in g32.items():
        assert g.dtype == torch.float32, k
        assert bool(torch.isfinite(g).all()), k


def test_parameter_gradients_do_not_depend_on_inflow_requiring_grad() -> None:
    with_ql = _grads(torch.float64, dense=False, qlat_grad=True)
    without = _grads(torch.float64, dense=False, qlat_grad=False)
    assert "lateral_inflow" not in without
    for k in without:
        assert torch.equal(with_ql[k], without[k]), k


def test_backward_twice_on_retained_graph_doubles_the_gradient() -> None:
    net = random_network(N, seed=1)
    qlat, channel, params = make_inputs(N, T, seed=2, time_varying=True)
    n = params["n"].clone().requires_grad_()
    out = muskingum_cunge(net, qlat, channel, {**params, "n": n})
    out.sum().backward(retain_graph=True)
    first = n.grad.clone()
    out.sum().backward()
    assert torch.equal(n.grad, 2 * first)
