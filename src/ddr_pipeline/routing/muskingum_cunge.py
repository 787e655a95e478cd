"""Differentiable Muskingum–Cunge routing (routing-physics.md §3), public entry point.

The whole time window runs in one compiled numba loop; its gradient is one hand-written adjoint
sweep (reverse time, reverse topological order) wrapped in a single ``torch.autograd.Function``.
``backend="cuda"`` runs the same contract as a CUDA kernel pair (``_cuda_backend``);
``backend="torch"`` is the slow level-scheduled pure-torch reference. The device policy of
``backend="auto"`` lives in :func:`choose_backend`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.parameter_registry import routing_domains
from ddr_pipeline.routing import _cpu_engine
from ddr_pipeline.routing import constants as K
from ddr_pipeline.routing._inputs import check_values, lateral_inflow_tensor, per_reach
from ddr_pipeline.routing._levelpool import N_PAR
from ddr_pipeline.routing._mc_kernels import traj_rows
from ddr_pipeline.routing._physics import (
    LIM_CEL_EXACT,
    LIM_GEOM_DDR,
    LIM_X_CUNGE,
    LIM_XMAX,
    LIM_XMIN,
    N_LIM,
    PARAM_NAMES,
)
from ddr_pipeline.routing._threads import routing_threads, torch_threads_kept
from ddr_pipeline.routing.lakes import LakeArrays, LakeResult, LevelPool, area_m2, prepare_lakes
from ddr_pipeline.routing.nudging import Nudging, NudgingArrays, NudgingResult, refuse_gradients

logger = logging.getLogger(__name__)

# valid range of each per-reach input: (lo, hi, lo_open)
# (learned parameters: the registry's domains, which configuration validation also checks)
_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "length": (0.0, None, True),
    "slope": (0.0, None, False),
    "x": (0.0, 0.5, False),
    "K_D": (0.0, None, False),
    **routing_domains(),
}


@dataclass(frozen=True)
class RoutingResult:
    """Routed states plus diagnostics.

    Attributes:
        discharge: (T+1, N) states; row 0 = initial state, row t+1 = end of step t.
        clamp_volume: (N,) volume (m³) added per reach by the Q_min floor (not differentiable).
        assimilation: the corrections and end state of the call's nudging (None without).
        lakes: the lakes' elevations and volumes (:class:`~.lakes.LakeResult`; None without).
    """

    discharge: torch.Tensor
    clamp_volume: torch.Tensor
    assimilation: NudgingResult | None = None
    lakes: LakeResult | None = None

    @property
    def clamp_volume_total(self) -> float:
        """Total volume (m³) added by the Q_min floor."""
        return float(self.clamp_volume.sum())


@dataclass(frozen=True)
class MeanDischarge:
    """What :func:`muskingum_cunge_means` returns.

    Attributes:
        means: (R, M) mean state of each observed reach over each input row (a day for daily
            inputs): row r = mean of Q[r·s+1 … r·s+s], s = ``substeps``; differentiable.
        final_state: (N,) state at the end of the window (differentiable).
        clamp_volume: (N,) volume (m³) added per reach by the Q_min floor (not differentiable).
        assimilation: the corrections and end state of the call's nudging (None without).
        lakes: the lakes' elevations and volumes (:class:`~.lakes.LakeResult`; None without).
    """

    means: torch.Tensor
    final_state: torch.Tensor
    clamp_volume: torch.Tensor
    assimilation: NudgingResult | None = None
    lakes: LakeResult | None = None


@dataclass(frozen=True)
class _Spec:
    """Non-tensor inputs of the autograd function (``obs_pos`` None: dense trajectory out;
    ``da``: the call's nudging arrays, filled by the forward, or None)."""

    net: RiverNetwork
    dt: float
    leak: bool
    hot: bool
    lim: np.ndarray
    substeps: int
    prow: np.ndarray
    every: int
    obs_pos: np.ndarray | None
    threads: int | None
    da: NudgingArrays | None = None
    lakes: LakeArrays | None = None

    def lake_arrays(self, n_t: int, lake_par: torch.Tensor) -> tuple | None:
        """The forward's ``lk`` tuple (``_mc_kernels._lake_forward``) with fresh elevation,
        inflow, outflow and withdrawal arrays, or None without lakes."""
        if self.lakes is None:
            return None
        n_l = self.lakes.n_lakes
        cfg = np.array([int(self.lakes.nwm), self.lakes.substeps], np.int64)
        return (self.lakes.lake_of, _np(lake_par), cfg, np.empty((n_t + 1, n_l)),
                np.empty((n_t, n_l)), np.empty((n_t, n_l)), np.empty((n_t, n_l)))  # fmt: skip


_NO_INT = np.zeros(0, np.int64)


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


class _MuskingumCungeFunction(torch.autograd.Function):
    """Forward = compiled time loop; backward = compiled adjoint sweep (``_mc_kernels``).

    Outputs ``(primary, final, clamp, elevation, inflow, outflow)``: the (T+1, N) trajectory and
    an empty ``final`` in dense mode, or the (R, M) interval means at the observed reaches and
    the (N,) final state; then the lakes' (T+1, L) elevations (float64, differentiable) and
    (T, L) inflows, outflows and withdrawals (L = 0 without lakes; inputs ``elev`` (L,) and
    ``lake_par`` (L, N_PAR), float64). The
    parameters are handed to the kernels as they are (no packed copy); the backward keeps the
    stored trajectory (every ``spec.every``-th state) and recomputes the rest. Gradients are
    written directly in the storage dtype, and only those autograd asks for are allocated.
    """

    @staticmethod
    def forward(  # type: ignore[override]  # noqa: PLR0917 (autograd signature)
        ctx, spec: _Spec, qlat: torch.Tensor, q0: torch.Tensor, elev: torch.Tensor,
        lake_par: torch.Tensor, *params: torch.Tensor,
    ):  # fmt: skip
        qlat_np = _np(qlat)
        n_r = qlat_np.shape[1]
        n_t = qlat_np.shape[0] * spec.substeps
        dtype = qlat_np.dtype
        traj = np.empty((traj_rows(n_t, spec.every), n_r), dtype=dtype)
        obs_pos = _NO_INT if spec.obs_pos is None else spec.obs_pos
        means = np.empty((qlat_np.shape[0], obs_pos.size), np.float64)
        clamp = np.zeros(n_r, np.float64)
        lk = spec.lake_arrays(n_t, lake_par)
        if lk is not None:
            lk[3][0] = _np(elev)
        with torch_threads_kept():
            ctx.record = _cpu_engine.forward(
                spec.net, qlat_np, spec.substeps, _np(q0), spec.hot, tuple(_np(p) for p in params),
                spec.prow, spec.dt, spec.leak, spec.lim, traj, spec.obs_pos is None, spec.every,
                obs_pos, means, clamp, routing_threads(spec.threads),
                None if spec.da is None else spec.da.arrays, lk,
            )  # fmt: skip
        traj_t = torch.from_numpy(traj)
        clamp_t = torch.from_numpy(clamp).to(qlat.dtype)
        lake_out = _lake_outputs(lk, n_t)
        ctx.set_materialize_grads(False)
        ctx.spec = spec
        ctx.lk = lk
        if spec.obs_pos is None:
            ctx.traj = None
            final = qlat.new_empty(0)
            ctx.mark_non_differentiable(clamp_t, final, *lake_out[1:])  # one call: it replaces
            ctx.save_for_backward(traj_t, qlat, q0, *params)
            return traj_t, final, clamp_t, *lake_out
        ctx.traj = traj  # by topological position
        ctx.mark_non_differentiable(clamp_t, *lake_out[1:])
        ctx.save_for_backward(qlat, q0, *params)
        final = np.empty(n_r, dtype)
        final[spec.net.routing_arrays()["order"]] = traj[-1]
        return (torch.from_numpy(means).to(qlat.dtype), torch.from_numpy(final), clamp_t,
                *lake_out)  # fmt: skip

    @staticmethod
    def backward(ctx, g_primary, g_final, _g_clamp, g_elev, _g_in, _g_out, _g_wd):  # type: ignore[override]
        spec: _Spec = ctx.spec
        if spec.da is not None:
            raise RuntimeError("streamflow nudging is forward only: no gradient through it")
        if spec.obs_pos is None:
            traj_t, qlat, q0, *params = ctx.saved_tensors
            traj = traj_t.numpy()
        else:
            qlat, q0, *params = ctx.saved_tensors
            traj = ctx.traj
        qlat_np = _np(qlat)
        n_rows, n_r = qlat_np.shape
        dtype = qlat_np.dtype
        gdense = np.zeros((0, n_r), dtype)
        gmeans = np.zeros((0, 0), np.float64)
        gfinal = np.zeros(0, dtype)
        obs_pos = _NO_INT
        if spec.obs_pos is None:
            if g_primary is not None:
                if g_primary.stride(0) == 0:  # same gradient row for every state (from .sum())
                    g_primary = g_primary[:1]
                gdense = _np(g_primary.to(qlat.dtype))
        else:
            obs_pos = spec.obs_pos
            if g_primary is not None:
                gmeans = _np(g_primary.to(torch.float64))
            if g_final is not None:
                gfinal = _np(g_final.to(qlat.dtype))
        need_ql = ctx.needs_input_grad[1]
        gqlat = np.empty((n_rows if need_ql else 0, n_r), dtype)
        needs = ctx.needs_input_grad[5:]
        gparams = tuple(
            np.empty((p.shape[0] if need else 0, n_r), dtype)
            for p, need in zip(params, needs, strict=True)
        )
        gq0 = np.zeros(n_r, np.float64)
        lka = _lake_adjoint_arrays(ctx.lk, g_elev)
        with torch_threads_kept():
            _cpu_engine.backward(
                spec.net, ctx.record, gdense, gmeans, obs_pos, gfinal, traj, spec.obs_pos is None,
                spec.every, qlat_np,
                spec.substeps, _np(q0), spec.hot, tuple(_np(p) for p in params), spec.prow,
                spec.dt, spec.leak, spec.lim, gqlat, gparams, gq0, ctx.lk, lka,
            )  # fmt: skip
        g_params = [
            torch.from_numpy(g) if need else None for g, need in zip(gparams, needs, strict=True)
        ]
        g_ql = torch.from_numpy(gqlat) if need_ql else None
        g_q0 = None if spec.hot else torch.from_numpy(gq0).to(qlat.dtype)
        g_h0 = g_lp = None
        if lka is not None:
            g_h0, g_lp = torch.from_numpy(lka[0]), torch.from_numpy(lka[2])
        return None, g_ql, g_q0, g_h0, g_lp, *g_params


def _lake_outputs(lk: tuple | None, n_t: int) -> tuple[torch.Tensor, ...]:
    """(elevations, inflows, outflows, withdrawals) tensors of the forward's ``lk`` (empty
    without)."""
    if lk is None:
        return (torch.from_numpy(np.empty((n_t + 1, 0))),
                *(torch.from_numpy(np.empty((n_t, 0))) for _ in range(3)))  # fmt: skip
    return tuple(torch.from_numpy(a) for a in lk[3:7])


def _lake_adjoint_arrays(lk: tuple | None, g_elev: torch.Tensor | None) -> tuple | None:
    """``lka`` of ``_cpu_engine.backward``: λ_H = dL/dH_T, the dense gradient of the
    elevations (rows 0 … T−1 are read; none when it is None) and zeroed parameter gradients."""
    if lk is None:
        return None
    n_l = lk[1].shape[0]
    ghd = np.zeros((0, n_l)) if g_elev is None else _np(g_elev.to(torch.float64))
    lam_h = ghd[-1].copy() if ghd.shape[0] else np.zeros(n_l)
    return lam_h, ghd, np.zeros((n_l, N_PAR))


def _settings(  # noqa: PLR0913, PLR0917 (one argument per floor)
    q_min: float, d_min: float, b_min: float, v_min: float, v_max: float, s_min: float,
    h_bank_min: float, h_bank_max: float, x_min: float, x_max: float, x_mode: str, celerity: str,
    geometry: str = "learned",
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
    if geometry not in K.GEOMETRIES:
        raise ValueError(f"geometry must be one of {list(K.GEOMETRIES)}, got {geometry!r}")
    lim = np.zeros(N_LIM, np.float64)
    lim[:8] = floors
    lim[LIM_XMIN], lim[LIM_XMAX] = x_min, x_max
    lim[LIM_X_CUNGE] = float(x_mode == "cunge")
    lim[LIM_CEL_EXACT] = float(celerity == "exact")
    lim[LIM_GEOM_DDR] = float(geometry == "ddr")
    return lim


def _gather_params(  # noqa: PLR0913, PLR0917 (private helper of muskingum_cunge)
    channel: Mapping[str, object],
    params: Mapping[str, object],
    leakance: bool,
    x_from_data: bool,
    n_t: int,
    n_rows: int,
    net: RiverNetwork,
    dtype: torch.dtype,
    device: torch.device,
    derived_geometry: bool = False,
) -> dict[str, torch.Tensor]:
    """All per-reach inputs as (1, N), (n_rows, N) or (T, N) tensors, validated, in PARAM_NAMES
    order (``x`` defaults to 0 and is unused when X comes from the flow; with
    ``derived_geometry`` (DDR's) ``top_width``/``side_slope`` are optional: the kernels read
    neither, so absent ones are filled with 1 to keep the array layout)."""
    unknown_c = set(channel) - {"length", "slope", "x"}
    unknown_p = set(params) - {"n", "q_spatial", "top_width", "side_slope", "K_D", "d_gw", "p"}
    if unknown_c or unknown_p:
        raise KeyError(f"unknown routing inputs: {sorted(unknown_c | unknown_p)}")
    merged: dict[str, object] = {"p": K.P_DEFAULT, "K_D": 0.0, "d_gw": 0.0, "x": 0.0}
    if derived_geometry:
        merged.update(top_width=1.0, side_slope=1.0)
    merged.update(channel)
    merged.update(params)
    required = ["length", "slope", "n", "q_spatial"]
    if not derived_geometry:
        required += ["top_width", "side_slope"]
    if x_from_data:
        required.append("x")
    if leakance:
        required += ["K_D", "d_gw"]
    missing = [k for k in required if k not in channel and k not in params]
    if missing:
        raise KeyError(f"missing routing inputs: {missing} (leakance={leakance})")
    out: dict[str, torch.Tensor] = {}
    for name in PARAM_NAMES:
        t = per_reach(name, merged[name], n_t, net, dtype, device, n_rows)
        lo, hi, lo_open = _RANGES[name]
        check_values(name, t, net, lo=lo, hi=hi, lo_open=lo_open)
        out[name] = t
    return out


@dataclass(frozen=True)
class _Problem:
    """Validated inputs of one routing call."""

    net: RiverNetwork
    qlat: torch.Tensor  # (R, N)
    substeps: int
    q0: torch.Tensor  # (N,), zeros for a hot start
    hot: bool
    params: dict[str, torch.Tensor]  # PARAM_NAMES order, (1 | R | T, N)
    dt: float
    leak: bool
    lim: np.ndarray
    backend: str
    threads: int | None
    da: NudgingArrays | None = None
    lakes: LakeArrays | None = None

    @property
    def n_steps(self) -> int:
        return self.qlat.shape[0] * self.substeps

    def steps_per_row(self) -> np.ndarray:
        """Steps per row of each parameter (0 = static), the kernels' ``prow``."""
        return np.array(
            [0 if p.shape[0] == 1 and self.n_steps > 1 else self.n_steps // p.shape[0]
             for p in self.params.values()],
            np.int64,
        )  # fmt: skip

    def spec(self, every: int, obs_pos: np.ndarray | None) -> _Spec:
        return _Spec(self.net, self.dt, self.leak, self.hot, self.lim, self.substeps,
                     self.steps_per_row(), every, obs_pos, self.threads, self.da,
                     self.lakes)  # fmt: skip

    def lake_inputs(self, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(elevation (L,), parameters (L, N_PAR)) float64 tensors on ``device`` (default the CPU;
        empty without lakes)."""
        device = torch.device("cpu") if device is None else device
        if self.lakes is None:
            f64 = {"dtype": torch.float64, "device": device}
            return torch.empty(0, **f64), torch.empty(0, N_PAR, **f64)
        return self.lakes.elevation.to(device), self.lakes.params.to(device).contiguous()

    def lake_result(self, *outs: torch.Tensor) -> LakeResult | None:
        """The call's :class:`~.lakes.LakeResult` from the backend's (elevations, inflows,
        outflows, withdrawals) (None without lakes), on the inputs' device."""
        if self.lakes is None:
            return None
        elev, inflow, outflow, wd = outs
        dev = self.qlat.device
        return LakeResult(self.lakes.reaches, elev.to(dev), inflow.to(dev), outflow.to(dev),
                          area_m2(self.lakes).to(dev), self.dt, wd.to(dev))  # fmt: skip

    def apply(self, every: int, obs_pos: np.ndarray | None):
        """Run the compiled backend: the CUDA kernels, or the numba engine on the CPU (inputs
        on another device are moved once and the outputs back, differentiably)."""
        if self.backend == "cuda":
            from ddr_pipeline.routing._cuda_backend import CudaMuskingumCunge, check_device

            check_device(self.qlat.device)
            params_c = [t.contiguous() for t in self.params.values()]
            return CudaMuskingumCunge.apply(
                self.spec(every, obs_pos), self.qlat.contiguous(), self.q0,
                *self.lake_inputs(self.qlat.device), *params_c,
            )  # fmt: skip
        cpu = torch.device("cpu")
        params_c = [t.to(cpu).contiguous() for t in self.params.values()]
        outs = _MuskingumCungeFunction.apply(
            self.spec(every, obs_pos), self.qlat.to(cpu).contiguous(), self.q0.to(cpu),
            *self.lake_inputs(), *params_c,
        )  # fmt: skip
        return tuple(o.to(self.qlat.device) for o in outs)


def _prepare(  # noqa: PLR0913 (one argument per documented option)
    net: RiverNetwork,
    lateral_inflow: torch.Tensor,
    channel: Mapping[str, object],
    params: Mapping[str, object],
    *,
    dt: float = K.DT_DEFAULT,
    substeps: int = 1,
    initial_state: torch.Tensor | None = None,
    leakance: bool = False,
    backend: str = "auto",
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
    geometry: str = "learned",
    x_min: float = K.X_MIN,
    x_max: float = K.X_MAX,
    threads: int | None = None,
    nudging: Nudging | None = None,
    lakes: LevelPool | None = None,
) -> _Problem:
    if nudging is not None:
        refuse_gradients({"lateral_inflow": lateral_inflow, "initial_state": initial_state,
                          **channel, **params})  # fmt: skip
        if lakes is not None:
            refuse_gradients({"lakes.elevation": lakes.elevation,
                              **{f"lakes.{k}": v for k, v in lakes.params.items()}})  # fmt: skip
    qlat = lateral_inflow_tensor(lateral_inflow, net)
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1
    ):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    if isinstance(substeps, bool) or not isinstance(substeps, int | np.integer) or substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    n_rows = qlat.shape[0]
    n_t = n_rows * int(substeps)
    dtype, device = qlat.dtype, qlat.device
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt}")
    lim = _settings(q_min, d_min, b_min, v_min, v_max, s_min, h_bank_min, h_bank_max,
                    x_min, x_max, x_mode, celerity, geometry)  # fmt: skip
    if geometry == "ddr" and leakance:
        raise ValueError("geometry='ddr' does not support leakance (its bank height needs W and z)")
    p = _gather_params(channel, params, leakance, x_mode == "data", n_t, n_rows, net, dtype, device,
                       derived_geometry=geometry == "ddr")  # fmt: skip
    hot = initial_state is None
    if hot:
        q0 = torch.zeros(net.n_reaches, dtype=dtype, device=device)
    else:
        q0 = per_reach("initial_state", initial_state, 1, net, dtype, device).reshape(-1)
        check_values("initial_state", q0, net, lo=0.0)
    da = None if nudging is None else NudgingArrays.build(nudging, net, n_t, float(dt))
    chosen = choose_backend(backend, device, lakes=lakes is not None)
    lk = None if lakes is None else prepare_lakes(lakes, net, device)
    return _Problem(net, qlat, int(substeps), q0, hot, p, float(dt), bool(leakance), lim,
                    chosen, threads, da, lk)  # fmt: skip


def muskingum_cunge(  # noqa: PLR0913 (one argument per documented option)
    net: RiverNetwork,
    lateral_inflow: torch.Tensor,
    channel: Mapping[str, object],
    params: Mapping[str, object],
    *,
    dt: float = K.DT_DEFAULT,
    substeps: int = 1,
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
    geometry: str = "learned",
    x_min: float = K.X_MIN,
    x_max: float = K.X_MAX,
    threads: int | None = None,
    nudging: Nudging | None = None,
    lakes: LevelPool | None = None,
) -> torch.Tensor | RoutingResult:
    """Route lateral inflow through ``net`` with Muskingum–Cunge; differentiable in every input.

    Args:
        net: the river network; per-reach columns follow ``net.ids``.
        lateral_inflow: (R, N) Q′ in m³/s (float32 or float64; the computation dtype); row r
            drives the ``substeps`` steps r·substeps … (r+1)·substeps − 1, so the window has
            T = R·substeps steps (daily Q′ with ``substeps=24`` for hourly steps).
        channel: ``length`` (m), ``slope`` (m/m, floored at ``s_min``), ``x`` (Muskingum X).
        params: ``n``, ``q_spatial``, ``top_width`` (m), ``side_slope`` (H:V; both optional
            and unused with ``geometry="ddr"``), optional ``p`` (default 21), and ``K_D`` (1/s),
            ``d_gw`` (m) when ``leakance``. Each a scalar, (N,) static, (R, N) per input row (held over its sub-steps, like Q′) or (T, N) per step.
        dt: routing step (s).
        substeps: routing steps per row of ``lateral_inflow``.
        initial_state: (N,) Q_0; default = hot start (accumulated Q′_0, floored at ``q_min``).
        leakance: include the riverbed exchange ζ.
        backend: ``"auto"`` (see :func:`choose_backend`), ``"numba"`` (CPU engine; tensors on
            another device are moved to the CPU and the result back), ``"cuda"`` (the CUDA
            kernels: CUDA tensors, or CPU tensors under ``DDR_CUDA_SIMULATOR=1``) or ``"torch"``
            (level-scheduled pure torch, any device, slow).
        return_diagnostics: return a :class:`RoutingResult` instead of the tensor.
        x_mode: ``"data"`` (X from ``channel["x"]``) or ``"cunge"`` (X from the flow each step,
            clamped to ``[x_min, x_max]``; ``channel["x"]`` is then optional and unused).
        celerity: ``"wide_rectangle"`` (c = 5/3 v) or ``"exact"`` (dQ/dA of the trapezoid).
        geometry: ``"learned"`` (W, z from ``params``) or ``"ddr"`` (DDR's derivation from the
            depth each step: W = p·d^q, z = clamp(W·q/(2d), 0.5, 50); ``top_width`` and
            ``side_slope`` are then unused and get no gradient; no ``leakance``).
        threads: CPU threads of the numba engine (forward and backward); default
            :func:`~ddr_pipeline.routing._threads.routing_threads` (``DDR_ROUTING_THREADS``, else
            torch's thread count, which ``experiment.threads`` sets), always capped at
            ``NUMBA_NUM_THREADS``. Results do not depend on it (bitwise).
        nudging: streamflow data assimilation at gauged reaches (:mod:`.nudging`; forward
            only: refused when an input requires grad); its corrections and end state come
            back in ``RoutingResult.assimilation``. None (default): off, bitwise the routing
            without it.
        lakes: NWM level-pool lakes (:class:`~.lakes.LevelPool`) routed at their reaches
            instead of Muskingum–Cunge (docs/routing.md, *Level-pool lakes*); their elevations
            and volumes come back in ``RoutingResult.lakes``. None (default): bitwise the
            routing without it.

    Returns:
        (T+1, N) states (row 0 = initial state), or a :class:`RoutingResult`.
    """
    prob = _prepare(
        net, lateral_inflow, channel, params, dt=dt, substeps=substeps,
        initial_state=initial_state, leakance=leakance, backend=backend, q_min=q_min,
        d_min=d_min, b_min=b_min, v_min=v_min, v_max=v_max, s_min=s_min,
        h_bank_min=h_bank_min, h_bank_max=h_bank_max, x_mode=x_mode, celerity=celerity,
        geometry=geometry, x_min=x_min, x_max=x_max, threads=threads, nudging=nudging,
        lakes=lakes,
    )  # fmt: skip
    device = prob.qlat.device
    if prob.backend in ("numba", "cuda"):
        out, _, clamp, *lake_out = prob.apply(1, None)
    else:
        out, clamp, *lake_out = _route_torch(prob)
    out = out.to(device)
    if return_diagnostics:
        return RoutingResult(discharge=out, clamp_volume=clamp.detach().to(device),
                             assimilation=None if prob.da is None else prob.da.result(),
                             lakes=prob.lake_result(*lake_out))  # fmt: skip
    return out


def muskingum_cunge_means(
    net: RiverNetwork,
    lateral_inflow: torch.Tensor,
    channel: Mapping[str, object],
    params: Mapping[str, object],
    reaches: Sequence[int] | np.ndarray,
    *,
    checkpoint_every: int = 1,
    **options: Any,
) -> MeanDischarge:
    """Route like :func:`muskingum_cunge` but return only what a loss on daily gauge flows needs.

    The result holds the mean state of each reach in ``reaches`` (user indices, repeats
    allowed) over each row of ``lateral_inflow`` — daily means for daily Q′ with
    ``substeps=24`` — and the final state; values and gradients equal those of
    ``daily_mean(muskingum_cunge(...))[:, reaches]`` and ``muskingum_cunge(...)[-1]`` (up to the
    float64 summation of the means). Memory: the output gradient is (R, M) instead of a dense
    (T+1, N) tensor, and with ``checkpoint_every = k > 1`` only every k-th state is stored: the
    backward recomputes each k-step segment from its stored state (one extra forward pass in
    total; states held O(N·T/k + N·k), best k ≈ √T), bitwise the same values and gradients.

    Args:
        reaches: (M,) user indices of the observed reaches.
        checkpoint_every: store every this many states (1 = all).
        **options: the keyword options of :func:`muskingum_cunge` (``dt``, ``substeps``,
            ``initial_state``, ``leakance``, ``backend``, ``threads``, ``nudging``, ``lakes``
            and the floors), not
            ``return_diagnostics``.
    """
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int | np.integer):
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every}")
    prob = _prepare(net, lateral_inflow, channel, params, **options)
    idx = np.asarray(reaches, dtype=np.int64).reshape(-1)
    bad = idx[(idx < 0) | (idx >= net.n_reaches)]
    if bad.size:
        raise IndexError(
            f"observed reach indices out of range [0, {net.n_reaches}): {bad[:20].tolist()}"
        )
    device = prob.qlat.device
    if prob.backend in ("numba", "cuda"):
        position = np.empty(net.n_reaches, np.int64)
        position[net.routing_arrays()["order"]] = np.arange(net.n_reaches)
        means, final, clamp, *lake_out = prob.apply(int(checkpoint_every), position[idx])
    else:
        out, clamp, *lake_out = _route_torch(prob)
        sel = out[1:, torch.as_tensor(idx, device=out.device)]
        means = sel.reshape(prob.qlat.shape[0], prob.substeps, idx.size).mean(dim=1)
        final = out[-1]
    return MeanDischarge(
        means=means.to(device), final_state=final.to(device),
        clamp_volume=clamp.detach().to(device),
        assimilation=None if prob.da is None else prob.da.result(),
        lakes=prob.lake_result(*lake_out),
    )  # fmt: skip


def _route_torch(prob: _Problem) -> tuple[torch.Tensor, ...]:
    """(states, clamp volume, lake elevations, inflows, outflows, withdrawals) by the torch
    reference."""
    from ddr_pipeline.routing._torch_backend import route_torch

    q0 = None if prob.hot else prob.q0
    return route_torch(prob.net, prob.qlat, prob.substeps, q0, prob.params, prob.dt, prob.leak,
                       prob.lim, None if prob.da is None else prob.da.arrays,
                       prob.lakes)  # fmt: skip


_BACKENDS = ("auto", "numba", "cuda", "torch")
_logged: set[tuple[str, str]] = set()


def choose_backend(backend: str, device: torch.device, *, lakes: bool = False) -> str:
    """The routing backend that runs for ``backend`` and tensors on ``device``.

    Device policy of ``"auto"``: never a path slower than the CPU engine. The CUDA kernels are
    picked for CUDA tensors when ``constants.CUDA_KERNEL_VERIFIED`` (verified on a real GPU),
    and for a call with ``lakes`` only when ``constants.CUDA_LAKES_VERIFIED`` too; otherwise
    CUDA tensors are routed by the numba engine on the CPU (inputs moved once per call,
    networks and loss stay on the GPU). The level-scheduled torch path only runs when
    requested. The choice is logged (INFO once per backend and device type, then DEBUG).
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    chosen = backend
    if backend == "auto":
        verified = K.CUDA_KERNEL_VERIFIED and (K.CUDA_LAKES_VERIFIED or not lakes)
        chosen = "cuda" if device.type == "cuda" and verified else "numba"
    key = (chosen, device.type)
    level = logging.DEBUG if key in _logged else logging.INFO
    _logged.add(key)
    where = " (numba engine on the CPU)" if chosen == "numba" and device.type != "cpu" else ""
    logger.log(level, "routing backend: %s for %s tensors%s", chosen, device.type, where)
    return chosen
