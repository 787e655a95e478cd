"""Differentiable Muskingum–Cunge routing (routing-physics.md §3), public entry point.

The whole time window runs in one compiled numba loop; its gradient is one hand-written adjoint
sweep (reverse time, reverse topological order) wrapped in a single ``torch.autograd.Function``.
CUDA tensors (or ``backend="torch"``) use the level-scheduled pure-torch implementation instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import constants as K
from ddr_pipeline.routing._inputs import check_values, lateral_inflow_tensor, per_reach
from ddr_pipeline.routing._mc_kernels import mc_backward, mc_forward
from ddr_pipeline.routing._physics import (
    LIM_CEL_EXACT,
    LIM_X_CUNGE,
    LIM_XMAX,
    LIM_XMIN,
    N_LIM,
    PARAM_NAMES,
)
from ddr_pipeline.routing._threads import kernel_chunks

logger = logging.getLogger(__name__)

# valid range of each per-reach input: (lo, hi, lo_open)
_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "length": (0.0, None, True),
    "slope": (0.0, None, False),
    "x": (0.0, 0.5, False),
    "n": (0.0, None, True),
    "q_spatial": (0.0, 1.0, False),
    "p": (0.0, None, True),
    "top_width": (0.0, None, True),
    "side_slope": (0.0, None, True),
    "K_D": (0.0, None, False),
    "d_gw": (None, None, False),
}


@dataclass(frozen=True)
class RoutingResult:
    """Routed states plus diagnostics.

    Attributes:
        discharge: (T+1, N) states; row 0 = initial state, row t+1 = end of step t.
        clamp_volume: (N,) volume (m³) added per reach by the Q_min floor (not differentiable).
    """

    discharge: torch.Tensor
    clamp_volume: torch.Tensor

    @property
    def clamp_volume_total(self) -> float:
        """Total volume (m³) added by the Q_min floor."""
        return float(self.clamp_volume.sum())


@dataclass(frozen=True)
class _Spec:
    """Non-tensor inputs of the autograd function."""

    net: RiverNetwork
    dt: float
    leak: bool
    hot: bool
    lim: np.ndarray


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


def _pack(params: tuple[torch.Tensor, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack (1, N)/(T, N) parameters into one array + start row and time-varying flag each."""
    rows = np.array([p.shape[0] for p in params], np.int64)
    pstart = np.zeros(len(params), np.int64)
    np.cumsum(rows[:-1], out=pstart[1:])
    pk = torch.cat([p.detach() for p in params], dim=0).cpu().numpy()
    return np.ascontiguousarray(pk), pstart, rows > 1


class _MuskingumCungeFunction(torch.autograd.Function):
    """Forward = compiled time loop; backward = compiled adjoint sweep.

    The packed parameters of the forward are kept for the backward (no re-packing); gradients are
    written directly in the storage dtype (static parameters accumulate in float64 inside the
    kernel), and only the gradients autograd asks for get (T, N) buffers.
    """

    @staticmethod
    def forward(ctx, spec: _Spec, qlat: torch.Tensor, q0: torch.Tensor, *params: torch.Tensor):  # type: ignore[override]
        arrs = spec.net.routing_arrays()
        qlat_np = _np(qlat)
        n_t, n_r = qlat_np.shape
        out = np.empty((n_t + 1, n_r), dtype=qlat_np.dtype)
        clamp = np.zeros(n_r, np.float64)
        pk, pstart, ptv = _pack(params)
        mc_forward(
            qlat_np, _np(q0), spec.hot, pk, pstart, ptv, spec.dt, spec.leak, spec.lim,
            arrs["order"], arrs["down"], arrs["up_ptr"], arrs["up_idx"], out, clamp,
            kernel_chunks(n_r),
        )  # fmt: skip
        out_t = torch.from_numpy(out)
        clamp_t = torch.from_numpy(clamp).to(qlat.dtype)
        ctx.mark_non_differentiable(clamp_t)
        ctx.spec = spec
        ctx.packed = (pk, pstart, ptv)
        ctx.save_for_backward(out_t, qlat, q0)
        return out_t, clamp_t

    @staticmethod
    def backward(ctx, gout: torch.Tensor, _gclamp: torch.Tensor):  # type: ignore[override]
        spec: _Spec = ctx.spec
        out_t, qlat, q0 = ctx.saved_tensors
        pk, pstart, ptv = ctx.packed
        arrs = spec.net.routing_arrays()
        qlat_np = _np(qlat)
        n_t, n_r = qlat_np.shape
        dtype = qlat_np.dtype
        if gout.stride(0) == 0:  # same gradient row for every step (e.g. from .sum())
            gout = gout[:1]
        need_ql = ctx.needs_input_grad[1]
        gqlat = np.empty((n_t if need_ql else 1, n_r), dtype)
        gpk = np.zeros(pk.shape, dtype)
        gq0 = np.zeros(n_r, np.float64)
        mc_backward(
            _np(gout.to(out_t.dtype)), out_t.numpy(), qlat_np, _np(q0), spec.hot, pk, pstart, ptv,
            spec.dt, spec.leak, spec.lim, arrs["order"], arrs["down"], arrs["up_ptr"],
            arrs["up_idx"], gqlat, gpk, gq0, kernel_chunks(n_r),
        )  # fmt: skip
        g_all = torch.from_numpy(gpk)
        rows = [int(pstart[k + 1] - pstart[k]) for k in range(len(pstart) - 1)]
        rows.append(pk.shape[0] - int(pstart[-1]))
        g_params = [
            g_all[s : s + r] if need else None
            for s, r, need in zip(pstart.tolist(), rows, ctx.needs_input_grad[3:], strict=True)
        ]
        g_ql = torch.from_numpy(gqlat) if need_ql else None
        g_q0 = None if spec.hot else torch.from_numpy(gq0).to(qlat.dtype)
        return None, g_ql, g_q0, *g_params


def _settings(  # noqa: PLR0913, PLR0917 (one argument per floor)
    q_min: float, d_min: float, b_min: float, v_min: float, v_max: float, s_min: float,
    h_bank_min: float, h_bank_max: float, x_min: float, x_max: float, x_mode: str, celerity: str,
) -> np.ndarray:  # fmt: skip
    """The kernels' settings vector (``LIM_*`` order of ``_physics``), validated."""
    floors = [q_min, d_min, b_min, v_min, v_max, s_min, h_bank_min, h_bank_max]
    if not (np.all(np.isfinite(floors)) and np.all(np.array(floors) > 0)):
        raise ValueError(f"floors/clamps must be finite and > 0, got {floors}")
    if v_max <= v_min or h_bank_max <= h_bank_min:
        raise ValueError("v_max must exceed v_min and h_bank_max must exceed h_bank_min")
    if not 0.0 <= x_min <= x_max <= 0.5:
        raise ValueError(f"Cunge X clamps need 0 <= x_min <= x_max <= 0.5, got [{x_min}, {x_max}]")
    if x_mode not in K.X_MODES:
        raise ValueError(f"x_mode must be one of {list(K.X_MODES)}, got {x_mode!r}")
    if celerity not in K.CELERITIES:
        raise ValueError(f"celerity must be one of {list(K.CELERITIES)}, got {celerity!r}")
    lim = np.zeros(N_LIM, np.float64)
    lim[:8] = floors
    lim[LIM_XMIN], lim[LIM_XMAX] = x_min, x_max
    lim[LIM_X_CUNGE] = float(x_mode == "cunge")
    lim[LIM_CEL_EXACT] = float(celerity == "exact")
    return lim


def _gather_params(  # noqa: PLR0917 (private helper of muskingum_cunge)
    channel: Mapping[str, object],
    params: Mapping[str, object],
    leakance: bool,
    x_from_data: bool,
    n_t: int,
    net: RiverNetwork,
    dtype: torch.dtype,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """All per-reach inputs as (1, N) or (T, N) tensors, validated, in PARAM_NAMES order
    (``x`` defaults to 0 and is unused when X comes from the flow)."""
    unknown_c = set(channel) - {"length", "slope", "x"}
    unknown_p = set(params) - {"n", "q_spatial", "top_width", "side_slope", "K_D", "d_gw", "p"}
    if unknown_c or unknown_p:
        raise KeyError(f"unknown routing inputs: {sorted(unknown_c | unknown_p)}")
    merged: dict[str, object] = {"p": K.P_DEFAULT, "K_D": 0.0, "d_gw": 0.0, "x": 0.0}
    merged.update(channel)
    merged.update(params)
    required = ["length", "slope", "n", "q_spatial", "top_width", "side_slope"]
    if x_from_data:
        required.append("x")
    if leakance:
        required += ["K_D", "d_gw"]
    missing = [k for k in required if k not in channel and k not in params]
    if missing:
        raise KeyError(f"missing routing inputs: {missing} (leakance={leakance})")
    out: dict[str, torch.Tensor] = {}
    for name in PARAM_NAMES:
        t = per_reach(name, merged[name], n_t, net, dtype, device)
        lo, hi, lo_open = _RANGES[name]
        check_values(name, t, net, lo=lo, hi=hi, lo_open=lo_open)
        out[name] = t
    return out


def muskingum_cunge(
    net: RiverNetwork,
    lateral_inflow: torch.Tensor,
    channel: Mapping[str, object],
    params: Mapping[str, object],
    *,
    dt: float = K.DT_DEFAULT,
    initial_state: torch.Tensor | None = None,
    leakance: bool = False,
    backend: str = "auto",
    return_diagnostics: bool = False,
    q_min: float = K.Q_MIN,
    d_min: float = K.D_MIN,
    b_min: float = K.B_MIN,
    v_min: float = K.V_MIN,
    v_max: float = K.V_MAX,
    s_min: float = K.S_MIN,
    h_bank_min: float = K.H_BANK_MIN,
    h_bank_max: float = K.H_BANK_MAX,
    x_mode: str = "data",
    celerity: str = "wide_rectangle",
    x_min: float = K.X_MIN,
    x_max: float = K.X_MAX,
) -> torch.Tensor | RoutingResult:
    """Route lateral inflow through ``net`` with Muskingum–Cunge; differentiable in every input.

    Args:
        net: the river network; per-reach columns follow ``net.ids``.
        lateral_inflow: (T, N) Q′ in m³/s, row t used by step t -> t+1 (float32 or float64; the
            computation dtype).
        channel: ``length`` (m), ``slope`` (m/m, floored at ``s_min``), ``x`` (Muskingum X).
        params: ``n``, ``q_spatial``, ``top_width`` (m), ``side_slope`` (H:V), optional ``p``
            (default 21), and ``K_D`` (1/s), ``d_gw`` (m) when ``leakance``. Each a scalar, (N,)
            static or (T, N) per step.
        dt: routing step (s).
        initial_state: (N,) Q_0; default = hot start (accumulated Q′_0, floored at ``q_min``).
        leakance: include the riverbed exchange ζ.
        backend: ``"auto"`` (numba on CPU, torch on CUDA), ``"numba"`` or ``"torch"``.
        return_diagnostics: return a :class:`RoutingResult` instead of the tensor.
        x_mode: ``"data"`` (X from ``channel["x"]``) or ``"cunge"`` (X from the flow each step,
            clamped to ``[x_min, x_max]``; ``channel["x"]`` is then optional and unused).
        celerity: ``"wide_rectangle"`` (c = 5/3 v) or ``"exact"`` (dQ/dA of the trapezoid).

    Returns:
        (T+1, N) states (row 0 = initial state), or a :class:`RoutingResult`.
    """
    qlat = lateral_inflow_tensor(lateral_inflow, net)
    n_t = qlat.shape[0]
    dtype, device = qlat.dtype, qlat.device
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt}")
    lim = _settings(q_min, d_min, b_min, v_min, v_max, s_min, h_bank_min, h_bank_max,
                    x_min, x_max, x_mode, celerity)  # fmt: skip
    p = _gather_params(channel, params, leakance, x_mode == "data", n_t, net, dtype, device)
    hot = initial_state is None
    if hot:
        q0 = torch.zeros(net.n_reaches, dtype=dtype, device=device)
    else:
        q0 = per_reach("initial_state", initial_state, 1, net, dtype, device).reshape(-1)
        check_values("initial_state", q0, net, lo=0.0)
    chosen = _choose_backend(backend, device)
    if chosen == "numba":
        spec = _Spec(net=net, dt=float(dt), leak=bool(leakance), hot=hot, lim=lim)
        params_c = [t.contiguous() for t in p.values()]
        out, clamp = _MuskingumCungeFunction.apply(spec, qlat.contiguous(), q0, *params_c)
    else:
        from ddr_pipeline.routing._torch_backend import route_torch

        out, clamp = route_torch(net, qlat, None if hot else q0, p, float(dt), bool(leakance), lim)
    out = out.to(device)
    if return_diagnostics:
        return RoutingResult(discharge=out, clamp_volume=clamp.detach().to(device))
    return out


def _choose_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'torch', got {backend!r}")
    if backend == "auto":
        return "numba" if device.type == "cpu" else "torch"
    if backend == "numba" and device.type != "cpu":
        raise ValueError(f"backend='numba' needs CPU tensors, got device {device}")
    return backend
