"""Fixed-coefficient Muskingum with RAPID conventions (routing-physics.md §5).

K and X are given per reach (no Cunge step, no Q_min floor). Each inflow interval is split into
``substeps`` equal routing steps of ``dt`` seconds with Q′ held constant; the value reported for an
interval is the mean of the states at the *start* of its sub-steps, and the final state is the state
at the end of the last sub-step. Differentiable in the lateral inflow, the initial state, K and X.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing._inputs import check_values, lateral_inflow_tensor, per_reach
from ddr_pipeline.routing._muskingum_kernels import (
    coefficients,
    coefficients_vjp,
    fixed_backward,
    fixed_forward,
)


@dataclass(frozen=True)
class MuskingumResult:
    """``interval_mean`` (T_in, N): mean of the sub-step start states per inflow interval;
    ``final_state`` (N,): state at the end; ``states`` (T_in·substeps + 1, N): every sub-step state."""

    interval_mean: torch.Tensor
    final_state: torch.Tensor
    states: torch.Tensor


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


class _MuskingumFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, net: RiverNetwork, dt: float, substeps: int, qext, q0, k, x):  # type: ignore[override]  # noqa: PLR0917 (compiled kernel / autograd signature)
        arrs = net.routing_arrays()
        qext_np = _np(qext)
        coef = coefficients(_np(k), _np(x), dt)
        out = np.empty((qext_np.shape[0] * substeps + 1, qext_np.shape[1]), qext_np.dtype)
        fixed_forward(
            qext_np,
            _np(q0),
            coef,
            substeps,
            arrs["order"],
            arrs["user_up_ptr"],
            arrs["user_up_idx"],
            out,
        )
        out_t = torch.from_numpy(out)
        ctx.net, ctx.dt, ctx.substeps = net, dt, substeps
        ctx.save_for_backward(out_t, qext, k, x)
        return out_t

    @staticmethod
    def backward(ctx, gout):  # type: ignore[override]
        out_t, qext, k, x = ctx.saved_tensors
        arrs = ctx.net.routing_arrays()
        k_np, x_np = _np(k), _np(x)
        coef = coefficients(k_np, x_np, ctx.dt)
        qext_np = _np(qext)
        gqext = np.zeros(qext_np.shape, np.float64)
        gcoef = np.zeros((k_np.size, 4), np.float64)
        gq0 = fixed_backward(
            _np(gout.to(out_t.dtype)), out_t.numpy(), qext_np, coef, ctx.substeps, arrs["order"],
            arrs["user_down"], arrs["user_up_ptr"], arrs["user_up_idx"], gqext, gcoef,
        )  # fmt: skip
        gk, gx = coefficients_vjp(k_np, x_np, ctx.dt, gcoef)
        dt_ = qext.dtype
        return (
            None, None, None, torch.from_numpy(gqext).to(dt_), torch.from_numpy(gq0).to(dt_),
            torch.from_numpy(gk).to(dt_), torch.from_numpy(gx).to(dt_),
        )  # fmt: skip


def muskingum(
    net: RiverNetwork,
    lateral_inflow: torch.Tensor,
    *,
    k: torch.Tensor | float,
    x: torch.Tensor | float,
    dt: float,
    substeps: int = 1,
    initial_state: torch.Tensor | None = None,
) -> MuskingumResult:
    """Route with fixed K (s) and X per reach, RAPID conventions.

    Args:
        net: the river network.
        lateral_inflow: (T_in, N) Q′ per inflow interval (m³/s), held constant over its sub-steps.
        k, x: Muskingum K (s, > 0) and X ([0, 0.5]); scalar or (N,).
        dt: routing sub-step (s); an inflow interval lasts ``substeps·dt``.
        substeps: routing steps per inflow interval.
        initial_state: (N,) initial discharge (default zeros, like RAPID).
    """
    qext = lateral_inflow_tensor(lateral_inflow, net, allow_negative=True)
    dtype, device = qext.dtype, qext.device
    if int(substeps) != substeps or substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps}")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt}")
    if device.type != "cpu":
        raise ValueError("muskingum runs on CPU tensors only; move inputs with .cpu()")
    kt = per_reach("k", k, 1, net, dtype, device).reshape(-1)
    xt = per_reach("x", x, 1, net, dtype, device).reshape(-1)
    check_values("k", kt, net, lo=0.0, lo_open=True)
    check_values("x", xt, net, lo=0.0, hi=0.5)
    if initial_state is None:
        q0 = torch.zeros(net.n_reaches, dtype=dtype)
    else:
        q0 = per_reach("initial_state", initial_state, 1, net, dtype, device).reshape(-1)
        check_values("initial_state", q0, net)
    states = _MuskingumFunction.apply(
        net,
        float(dt),
        int(substeps),
        qext.contiguous(),
        q0.contiguous(),
        kt.contiguous(),
        xt.contiguous(),
    )
    n_in = qext.shape[0]
    means = states[:-1].reshape(n_in, int(substeps), net.n_reaches).mean(dim=1)
    return MuskingumResult(interval_mean=means, final_state=states[-1], states=states)
