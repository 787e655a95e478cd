"""CUDA backend of :func:`~ddr_pipeline.routing.muskingum_cunge`: the kernel pair of
``_cuda_kernels`` wrapped in one ``torch.autograd.Function``.

``DDR_CUDA_SIMULATOR=1`` (read when the first CUDA routing call imports ``numba.cuda``) runs the
same kernels in numba-cuda's CPU simulator on CPU tensors; otherwise the kernels run on the GPU
on CUDA tensors, zero-copy (``__cuda_array_interface__``) on torch's current stream, with no
host synchronisation inside the time loop (per call only a few small copies of settings). The block plan (``_cuda_plan``) is built once per network, block
caps and device, and cached here.
"""

from __future__ import annotations

import os
import sys
import types
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import constants as K
from ddr_pipeline.routing._cuda_plan import BlockPlan, build_plan
from ddr_pipeline.routing._levelpool import N_PAR
from ddr_pipeline.routing._nudge import NO_DA as _NO_DA
from ddr_pipeline.routing._physics import N_CB

ENV_SIMULATOR = "DDR_CUDA_SIMULATOR"
_WARP = 32
_plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def simulator_requested() -> bool:
    """True when ``DDR_CUDA_SIMULATOR`` is set to 1."""
    return os.environ.get(ENV_SIMULATOR, "0").strip().lower() in ("1", "true", "yes")


def kernels() -> types.ModuleType:
    """The kernel module. The first call imports ``numba.cuda``, in simulator mode when
    ``DDR_CUDA_SIMULATOR=1``; the mode cannot change afterwards in this process."""
    from numba.core import config  # numba.cuda reads numba's config when numba is installed

    if "numba.cuda" not in sys.modules and simulator_requested() and not config.ENABLE_CUDASIM:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        config.reload_config()

    if simulator_requested() and not config.ENABLE_CUDASIM:
        raise RuntimeError(
            f"{ENV_SIMULATOR}=1 but numba.cuda was already imported for real GPUs in this "
            "process; set it before the first CUDA routing call"
        )
    from ddr_pipeline.routing import _cuda_kernels

    return _cuda_kernels


def simulator_active() -> bool:
    """Whether the CUDA backend runs on numba-cuda's CPU simulator (imports ``numba.cuda``)."""
    kernels()
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def check_device(device: torch.device) -> None:
    """``ValueError`` unless ``device`` suits the mode: CPU tensors under the simulator, CUDA
    tensors on a GPU."""
    if simulator_active():
        if device.type != "cpu":
            raise ValueError(
                f"backend='cuda' under {ENV_SIMULATOR}=1 runs the kernels on CPU tensors, "
                f"got device {device}"
            )
    elif device.type != "cuda":
        raise ValueError(
            f"backend='cuda' needs CUDA tensors (got device {device}); set {ENV_SIMULATOR}=1 "
            "to run the kernels on CPU tensors in the simulator"
        )


@dataclass(frozen=True)
class _DevicePlan:
    plan: BlockPlan
    arrays: dict[str, torch.Tensor]
    threads: int


def _device_plan(net: RiverNetwork, device: torch.device, simulator: bool) -> _DevicePlan:
    key = (K.CUDA_BLOCK_REACHES, K.CUDA_BLOCK_LEVELS, str(device))
    per_net = _plans.setdefault(net, {})
    if key not in per_net:
        plan = build_plan(net, K.CUDA_BLOCK_REACHES, K.CUDA_BLOCK_LEVELS)
        routing = net.routing_arrays()
        host = {**plan.arrays(), **{k: routing[k] for k in ("order", "down", "up_ptr", "up_idx")}}
        threads = plan.threads if simulator else -(-plan.threads // _WARP) * _WARP
        per_net[key] = _DevicePlan(
            plan=plan,
            arrays={k: torch.as_tensor(np.ascontiguousarray(v), device=device) for k, v in host.items()},
            threads=threads,
        )  # fmt: skip
    return per_net[key]


def _launch(kernel, dplan: _DevicePlan, device: torch.device, *args) -> None:
    """Launch ``kernel`` over every plan block; tensors (and tuples of tensors) become kernel
    arrays without copies."""
    from numba import cuda

    simulator = device.type == "cpu"

    def conv(a):
        if isinstance(a, tuple):
            return tuple(conv(x) for x in a)
        if isinstance(a, torch.Tensor):
            # saved inputs can still require grad inside backward; the kernels never record them.
            # sync=False: the launch is ordered on the same (torch's current) stream
            a = a.detach()
            return a.numpy() if simulator else cuda.as_cuda_array(a, sync=False)
        return a

    kargs = [conv(a) for a in args]
    if simulator:
        kernel[dplan.plan.n_blocks, dplan.threads](*kargs)
        return
    with cuda.gpus[device.index or 0]:
        stream = cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)
        kernel[dplan.plan.n_blocks, dplan.threads, stream](*kargs)


def _observed_csr(obs_pos: np.ndarray | None, n_r: int, device: torch.device):
    """CSR (by position) of the columns of ``means`` each reach feeds (repeats allowed)."""
    pos = np.zeros(0, np.int64) if obs_pos is None else np.asarray(obs_pos, np.int64)
    cols = np.argsort(pos, kind="stable")
    ptr = np.zeros(n_r + 1, np.int64)
    np.cumsum(np.bincount(pos, minlength=n_r), out=ptr[1:])
    return torch.as_tensor(ptr, device=device), torch.as_tensor(cols, device=device)


class CudaMuskingumCunge(torch.autograd.Function):
    """Forward = :func:`mc_forward_kernel`; backward = :func:`mc_backward_kernel` (one launch
    each, the time loop on the device). Same inputs and outputs as the numba engine's autograd
    function (``spec`` is its ``_Spec``): ``(trajectory, empty, clamp)`` in dense mode, or
    ``(means at spec.obs_pos, final state, clamp)``, then the lakes' (T+1, L) elevations and
    (T, L) inflows, outflows and withdrawals (inputs ``elev`` (L,), ``lake_par`` (L, N_PAR), float64; L = 0
    without lakes). The full trajectory is kept on the device (``spec.every`` > 1, time
    checkpointing, is not implemented in the kernels)."""

    @staticmethod
    def forward(  # type: ignore[override]  # noqa: PLR0917 (autograd signature)
        ctx, spec, qlat: torch.Tensor, q0: torch.Tensor, elev: torch.Tensor,
        lake_par: torch.Tensor, *params: torch.Tensor,
    ):  # fmt: skip
        kern = kernels()
        device = qlat.device
        dplan = _device_plan(spec.net, device, simulator_active())
        a = dplan.arrays
        n_rows, n_r = qlat.shape
        n_t = n_rows * spec.substeps
        prow = torch.as_tensor(spec.prow, device=device)
        lim = torch.as_tensor(spec.lim, device=device)
        obs_ptr, obs_idx = _observed_csr(spec.obs_pos, n_r, device)
        n_obs = 0 if spec.obs_pos is None else len(spec.obs_pos)
        f64 = {"dtype": torch.float64, "device": device}
        out = torch.empty((n_t + 1, n_r), dtype=qlat.dtype, device=device)
        means = torch.empty((n_rows, n_obs), **f64)
        clamp = torch.zeros(n_r, **f64)
        acc0 = torch.zeros(n_r, **f64)
        progress = torch.zeros(dplan.plan.n_blocks, dtype=torch.int32, device=device)
        ticket = torch.zeros(1, dtype=torch.int32, device=device)
        pk = tuple(p.detach() for p in params)
        da = tuple(torch.as_tensor(a, device=device)
                   for a in (_NO_DA if spec.da is None else spec.da.arrays))  # fmt: skip
        lk = _lake_arrays(spec, elev, lake_par, n_t, device)
        _launch(
            kern.mc_forward_kernel, dplan, device, qlat.detach(), spec.substeps, q0.detach(),
            spec.hot, pk, prow, spec.dt, spec.leak, lim, a["order"], a["up_ptr"], a["up_idx"],
            a["slot_pos"], a["slot_level"], a["blk_ptr"], a["blk_levels"], a["bup_ptr"],
            a["bup_idx"], a["xdown"], obs_ptr, obs_idx, out, means, clamp, acc0,
            torch.empty((n_r, N_CB), **f64), progress, ticket, da, lk,
        )  # fmt: skip
        if spec.da is not None:
            for host, dev in zip(spec.da.arrays[2:5], da[2:5], strict=True):
                host[...] = dev.cpu().numpy()
        clamp_t = clamp.to(qlat.dtype)
        ctx.set_materialize_grads(False)
        ctx.spec = spec
        ctx.obs = (obs_ptr, obs_idx)
        ctx.lk = lk
        ctx.save_for_backward(out, qlat, q0, acc0, prow, lim, *params)
        lake_out = (lk[3], lk[4], lk[5], lk[6])
        if spec.obs_pos is None:
            final = qlat.new_empty(0)
            ctx.mark_non_differentiable(clamp_t, final, *lake_out[1:])  # one call: it replaces
            return out, final, clamp_t, *lake_out
        ctx.mark_non_differentiable(clamp_t, *lake_out[1:])
        return means.to(qlat.dtype), out[-1].clone(), clamp_t, *lake_out

    @staticmethod
    def backward(ctx, g_primary, g_final, _g_clamp, g_elev, _g_in, _g_out, _g_wd):  # type: ignore[override]
        kern = kernels()
        spec = ctx.spec
        if spec.da is not None:
            raise RuntimeError("streamflow nudging is forward only: no gradient through it")
        out, qlat, q0, acc0, prow, lim, *params = ctx.saved_tensors
        device = qlat.device
        dplan = _device_plan(spec.net, device, simulator_active())
        a = dplan.arrays
        n_rows, n_r = qlat.shape
        n_t = n_rows * spec.substeps
        dtype = qlat.dtype
        f64 = {"dtype": torch.float64, "device": device}
        gdense = torch.zeros((0, n_r), dtype=dtype, device=device)
        gmeans = torch.zeros((0, 0), **f64)
        gfinal = torch.zeros(0, dtype=dtype, device=device)
        if spec.obs_pos is None:
            if g_primary is not None:
                if g_primary.stride(0) == 0:  # same gradient row for every state (from .sum())
                    g_primary = g_primary[:1]
                gdense = g_primary.to(dtype).contiguous()
        else:
            if g_primary is not None:
                gmeans = g_primary.to(torch.float64).contiguous()
            if g_final is not None:
                gfinal = g_final.to(dtype).contiguous()
        need_ql = ctx.needs_input_grad[1]
        needs = ctx.needs_input_grad[5:]
        gqlat = torch.empty((n_rows if need_ql else 0, n_r), dtype=dtype, device=device)
        gparams = tuple(
            torch.empty((p.shape[0] if need else 0, n_r), dtype=dtype, device=device)
            for p, need in zip(params, needs, strict=True)
        )
        gq0 = torch.zeros(n_r, **f64)
        n_slots = max(dplan.plan.n_bslots, 1)
        obs_ptr, obs_idx = ctx.obs
        n_l = ctx.lk[1].shape[0]
        ghd = torch.zeros((0, n_l), **f64) if g_elev is None else g_elev.to(torch.float64)
        lka = (torch.zeros(n_l, **f64), ghd.contiguous(), torch.zeros((n_l, N_PAR), **f64))
        _launch(
            kern.mc_backward_kernel, dplan, device, gdense, gmeans, gfinal, obs_ptr, obs_idx,
            out, qlat, spec.substeps, q0, spec.hot, tuple(params), prow, spec.dt, spec.leak,
            lim, a["order"], a["down"], a["up_ptr"], a["up_idx"], a["slot_pos"],
            a["slot_level"], a["blk_ptr"], a["blk_levels"], a["bdown"], a["xdown"], a["bslot"],
            acc0, gqlat, gparams, gq0, torch.empty((n_r, N_CB), **f64), torch.zeros(n_r, **f64),
            torch.zeros(n_r, **f64), torch.zeros((n_t + 1, n_slots), **f64),
            torch.zeros((n_t + 1, n_slots), **f64),
            torch.zeros(dplan.plan.n_blocks, dtype=torch.int32, device=device),
            torch.zeros(1, dtype=torch.int32, device=device), ctx.lk, lka,
        )  # fmt: skip
        g_params = [g if need else None for g, need in zip(gparams, needs, strict=True)]
        g_ql = gqlat if need_ql else None
        g_q0 = None if spec.hot else gq0.to(dtype)
        g_h0, g_lp = (lka[0], lka[2]) if n_l else (None, None)
        return None, g_ql, g_q0, g_h0, g_lp, *g_params


def _lake_arrays(spec, elev: torch.Tensor, lake_par: torch.Tensor, n_t: int,
                 device: torch.device) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """The kernels' ``lk`` tuple on ``device`` (``_mc_kernels._lake_forward``): lake of each
    position, parameters, (nwm, substeps), elevations (row 0 = ``elev``), inflows, outflows,
    withdrawals."""
    f64 = {"dtype": torch.float64, "device": device}
    lakes = spec.lakes
    n_l = 0 if lakes is None else lakes.n_lakes
    lake_of = np.zeros(0, np.int64) if lakes is None else lakes.lake_of
    cfg = [0, 1] if lakes is None else [int(lakes.nwm), lakes.substeps]
    lake_h = torch.empty((n_t + 1 if n_l else 0, n_l), **f64)
    if n_l:
        lake_h[0] = elev.detach().to(**f64)
    return (torch.as_tensor(lake_of, device=device),
            lake_par.detach().to(**f64).reshape(n_l, N_PAR).contiguous(),
            torch.as_tensor(cfg, dtype=torch.int64, device=device), lake_h,
            *(torch.empty((n_t if n_l else 0, n_l), **f64) for _ in range(3)))  # fmt: skip
