"""CUDA Muskingum–Cunge kernels (forward and adjoint), numba-cuda.

Import through :func:`ddr_pipeline.routing._cuda_backend.kernels` only: whether numba-cuda runs
real kernels or its CPU simulator is fixed when ``numba.cuda`` is first imported.

The per-reach physics is *not* rewritten here: :func:`device_function` recompiles the numba
functions of ``_physics`` / ``_mc_kernels`` (``fill_constants``, ``reach_coefs``,
``reach_physics``, ``reach_vjp``, ``_unfloored_update`` and the update's reverse mode
``update_adjoint``), of ``_nudge`` and of ``_levelpool`` (a lake reach's level-pool step and its
reverse mode, run by the reach's own thread, which carries the lake's λ_H in a register)
as CUDA device functions from their Python source, with every numba function
they call converted the same way, so the CPU engine and the kernels cannot drift. Layout (``_cuda_plan``): one thread block per plan block, one thread
per reach, a step = the per-reach physics (all threads), then one pass over the block's local
levels with a barrier between levels. Blocks publish their progress (stages done) in
``progress``; a block waits (one thread spinning on atomic reads) for the stages it needs from
other blocks, and reads their values with atomic loads (coherent in L2, never a stale L1 line).
Forward stages: 0 = initial state, t+1 = step t. Adjoint stages: s = T−1−t for step t, T = hot
start.
"""

from __future__ import annotations

import types

import numba
from numba import cuda
from numba.core.registry import CPUDispatcher

from ddr_pipeline.routing._levelpool import N_PAR, SUBSTEPS_MAX, lake_par, lake_step, lake_step_vjp
from ddr_pipeline.routing._mc_kernels import _unfloored_update, update_adjoint
from ddr_pipeline.routing._nudge import nudge_value
from ddr_pipeline.routing._physics import (
    LIM_QMIN,
    PARAM_NAMES,
    fill_constants,
    reach_coefs,
    reach_physics,
    reach_vjp,
    rows_change,
)

N_PARAMS = len(PARAM_NAMES)
_converted: dict[int, object] = {}


def device_function(fn: CPUDispatcher) -> object:
    """``cuda.jit(device=True)`` of the Python source of the numba function ``fn``; numba
    functions it calls (its globals) are converted recursively."""
    key = id(fn)
    if key not in _converted:
        py = fn.py_func
        glb = dict(py.__globals__)
        for name in py.__code__.co_names:
            if isinstance(glb.get(name), CPUDispatcher):
                glb[name] = device_function(glb[name])
        clone = types.FunctionType(py.__code__, glb, py.__name__, py.__defaults__, py.__closure__)
        _converted[key] = cuda.jit(device=True)(clone)
    return _converted[key]


_fill_constants = device_function(fill_constants)
_reach_coefs = device_function(reach_coefs)
_reach_physics = device_function(reach_physics)
_reach_vjp = device_function(reach_vjp)
_update = device_function(_unfloored_update)
_update_adjoint = device_function(update_adjoint)
_rows_change = device_function(rows_change)
_nudge_value = device_function(nudge_value)
_lake_step = device_function(lake_step)
_lake_step_vjp = device_function(lake_step_vjp)
_lake_params = device_function(lake_par)
N_LAKE_PARAMS = N_PAR
N_LAKE_SCRATCH = SUBSTEPS_MAX + 1  # a module constant: local array shapes must be literals


@cuda.jit(device=True)
def _load(arr, idx, cross):
    """``arr[idx]`` as float64; an atomic (L2) load when another block wrote it."""
    if cross:
        return float(cuda.atomic.add(arr, idx, 0.0))
    return float(arr[idx])


@cuda.jit(device=True)
def _take_ticket(ticket, reverse, n_blocks):
    """Plan block of this thread block: tickets in launch order, upstream first (or reversed)."""
    shared = cuda.shared.array(1, numba.int64)
    if cuda.threadIdx.x == 0:
        b = cuda.atomic.add(ticket, 0, 1)
        shared[0] = n_blocks - 1 - b if reverse else b
    cuda.syncthreads()
    return shared[0]


@cuda.jit(device=True)
def _wait(progress, blocks, lo, hi, stage):
    """Block until ``progress[blocks[lo:hi]] >= stage`` (one thread spins), then barrier."""
    if hi > lo:
        if cuda.threadIdx.x == 0:
            for m in range(lo, hi):
                while cuda.atomic.add(progress, blocks[m], 0) < stage:
                    pass
        cuda.syncthreads()


@cuda.jit(device=True)
def _publish(progress, b, stage):
    """Stage done (called after the level loop's last barrier; writers fenced already)."""
    if cuda.threadIdx.x == 0:
        cuda.atomic.max(progress, b, stage)


@cuda.jit(device=True)
def _upstream_states(out, t, k, order, up_ptr, up_idx, xdown):  # noqa: PLR0917 (device function)
    """(Σ_up Q_t, Σ_up Q_{t+1}) of position k from the trajectory (CSR order, float64)."""
    usum = 0.0
    vsum = 0.0
    for m in range(up_ptr[k], up_ptr[k + 1]):
        j = up_idx[m]
        cross = xdown[j] != 0
        usum += _load(out, (t, order[j]), cross)
        vsum += _load(out, (t + 1, order[j]), cross)
    return usum, vsum


@cuda.jit(device=True)
def _refresh(cb, t, loaded, params, prow, lim, order, k):  # noqa: PLR0917 (device function)
    """Bring the constants of position k from step ``loaded`` (−1: none) to step t, as
    ``_mc_kernels._refresh_mode``: everything first, then only when a parameter row changes."""
    if loaded < 0:
        _fill_constants(cb, t, params, prow, lim, order, True, k, k + 1)
    elif _rows_change(prow, loaded, t):
        _fill_constants(cb, t, params, prow, lim, order, False, k, k + 1)


@cuda.jit
def mc_forward_kernel(  # noqa: PLR0913, PLR0917 (kernel signature)
    qlat, substeps, q0, hot, params, prow, dt, leak, lim, order, up_ptr, up_idx,
    slot_pos, slot_level, blk_ptr, blk_levels, bup_ptr, bup_idx, xdown, obs_ptr, obs_idx,
    out, means, clamp_volume, acc0, cb, progress, ticket, da, lk,
):  # fmt: skip
    """Forward time loop of every plan block (see the module docstring) over T = R·substeps
    steps (row ``t // substeps`` of ``qlat`` drives step t); writes ``out`` ((T+1, N) states),
    the means over each ``qlat`` row at the observed reaches (``obs_ptr``/``obs_idx``: CSR of
    columns of ``means`` by position), ``clamp_volume`` (N,; skipped when empty) and the
    unfloored hot start ``acc0`` (positions). ``da``: the nudging arrays of
    ``_mc_kernels._assimilate`` (off when the first is empty); a gauged reach is nudged by its
    own thread before the barrier that lets its downstream reaches read it. ``lk``: the lakes
    of ``_mc_kernels._lake_forward`` (none when the first is empty); a lake reach's thread runs
    the level-pool step and stores its elevation, inflow, outflow and withdrawal."""
    n_t = qlat.shape[0] * substeps
    qmin = lim[LIM_QMIN]
    gauge_of, da_obs, da_last_val, da_last_time, da_corr, da_par = da
    lake_of, lpar, lcfg, lake_h, lake_in, lake_out, lake_wd = lk

    track = clamp_volume.shape[0] > 0
    b = _take_ticket(ticket, False, blk_levels.shape[0])
    lo = blk_ptr[b]
    tid = cuda.threadIdx.x
    active = tid < blk_ptr[b + 1] - lo
    k = slot_pos[lo + tid] if active else 0
    lv = slot_level[lo + tid] if active else -1
    i = order[k]
    gauge = gauge_of[k] if active and gauge_of.shape[0] > 0 else -1
    lake = lake_of[k] if active and lake_of.shape[0] > 0 else -1
    nwm, nmin = lcfg[0] != 0, lcfg[1]
    n_lev = blk_levels[b]
    w_lo, w_hi = bup_ptr[b], bup_ptr[b + 1]
    if hot:
        _wait(progress, bup_idx, w_lo, w_hi, 1)
        for lev in range(n_lev):
            if lv == lev:
                a = float(qlat[0, i])
                for m in range(up_ptr[k], up_ptr[k + 1]):
                    j = up_idx[m]
                    a += _load(acc0, j, xdown[j] != 0)
                acc0[k] = a
                out[0, i] = max(a, qmin)
                if xdown[k] != 0:
                    cuda.threadfence()
            cuda.syncthreads()
    else:
        if active:
            out[0, i] = float(q0[i]) if lake >= 0 else max(float(q0[i]), qmin)
            if xdown[k] != 0:
                cuda.threadfence()
        cuda.syncthreads()
    _publish(progress, b, 1)
    qt = float(out[0, i]) if active else 0.0
    cvol = 0.0
    macc = 0.0
    for t in range(n_t):
        c1 = c2 = c3 = c4 = zr = ql = 0.0
        if active:
            _refresh(cb, t, t - 1, params, prow, lim, order, k)
            c1, c2, c3, c4, zr = _reach_coefs(cb, k, qt, dt, leak, lim)
            ql = float(qlat[t // substeps, i])
        _wait(progress, bup_idx, w_lo, w_hi, t + 2)
        for lev in range(n_lev):
            if lv == lev:
                usum, vsum = _upstream_states(out, t, k, order, up_ptr, up_idx, xdown)
                if lake >= 0:
                    i0, i1 = usum + ql, vsum + ql
                    h1, y, wd, _ = _lake_step(lake_h[t, lake], i0, i1, dt,
                                              _lake_params(lpar, lake), nwm, nmin)  # fmt: skip
                    lake_h[t + 1, lake] = h1
                    lake_in[t, lake] = 0.5 * (i0 + i1)
                    lake_out[t, lake] = y
                    lake_wd[t, lake] = wd
                else:
                    y = _update(c1, c2, c3, c4, zr, qt, ql, usum, vsum, leak)[0]
                    if y < qmin:
                        if track:
                            cvol += (qmin - y) * dt
                        y = qmin
                if gauge >= 0:
                    y, c, lv_, lt_ = _nudge_value(y, da_obs[t, gauge], da_last_val[gauge],
                                                  da_last_time[gauge], (t + 1) * dt, da_par[0],
                                                  da_par[1], qmin)  # fmt: skip
                    da_last_val[gauge], da_last_time[gauge], da_corr[t, gauge] = lv_, lt_, c
                out[t + 1, i] = y
                if xdown[k] != 0:
                    cuda.threadfence()
            cuda.syncthreads()
        _publish(progress, b, t + 2)
        if active:
            qt = float(out[t + 1, i])
            if obs_ptr[k + 1] > obs_ptr[k]:
                macc += qt
                if (t + 1) % substeps == 0:
                    for m in range(obs_ptr[k], obs_ptr[k + 1]):
                        means[t // substeps, obs_idx[m]] = macc / substeps
                    macc = 0.0
    if active and track:
        clamp_volume[i] = cvol


@cuda.jit
def mc_backward_kernel(  # noqa: PLR0912, PLR0913, PLR0915, PLR0917 (kernel signature)
    gdense, gmeans, gfinal, obs_ptr, obs_idx, out, qlat, substeps, q0, hot, params, prow, dt,
    leak, lim, order, down, up_ptr, up_idx, slot_pos, slot_level, blk_ptr, blk_levels, bdown,
    xdown, bslot, acc0, gqlat, gparams, gq0, cb, c1nu, gus, bnd_c1nu, bnd_gu, progress, ticket,
    lk, lka,
):  # fmt: skip
    """Adjoint of :func:`mc_forward_kernel` (same contract as the numba engine's ``_mc_kernels.backward_task``: output
    gradients ``gdense`` ((T+1, N), (1, N) broadcast or (0, N)), ``gmeans`` ((R, M) or (0, M))
    and ``gfinal`` ((N,) or (0,)); ``gqlat`` (R, N) or (0, N), ``gparams`` rows like their
    parameters or (0, N)): reverse time; per step the physics of every reach, then the block's
    levels downstream first, then the reverse mode of the physics. ``c1nu``/``gus`` (positions)
    carry C1·ν and the gradient sent upstream (ν C2 + g_F; at the hot-start stage the accumulated
    dL/dQ′_0) inside a block, ``bnd_c1nu``/``bnd_gu`` ((T+1, slots), by stage) across blocks.
    Lakes (``lk`` of the forward; ``lka = (λ_H out (L,), dense gradient of the elevations
    ((T+1, L) or (0, L)), parameter gradients (L, N_PAR) out)``): a lake reach's thread runs
    ``_levelpool.lake_step_vjp`` with λ_H in a register and sends dL/dI_t, dL/dI_{t+1} up as
    C2·ν and C1·ν."""
    n_rows = qlat.shape[0]
    n_t = n_rows * substeps
    qmin = lim[LIM_QMIN]
    want_ql = gqlat.shape[0] > 0
    g_rows = gdense.shape[0]
    have_means = gmeans.shape[0] > 0
    b = _take_ticket(ticket, True, blk_levels.shape[0])
    lo = blk_ptr[b]
    tid = cuda.threadIdx.x
    active = tid < blk_ptr[b + 1] - lo
    k = slot_pos[lo + tid] if active else 0
    lv = slot_level[lo + tid] if active else -1
    i = order[k]
    dn = down[k]
    cross_dn = xdown[k] != 0
    own_slot = bslot[k]
    n_lev = blk_levels[b]
    w_hi = 1 if bdown[b] >= 0 else 0
    waitlist = bdown[b : b + 1]
    gacc = cuda.local.array(N_PARAMS, numba.float64)
    for p in range(N_PARAMS):
        gacc[p] = 0.0
    lake_of, lpar, lcfg, lake_h = lk[0], lk[1], lk[2], lk[3]
    lam_h_out, ghd, glake = lka
    lake = lake_of[k] if active and lake_of.shape[0] > 0 else -1
    nwm, nmin = lcfg[0] != 0, lcfg[1]
    hs = cuda.local.array(N_LAKE_SCRATCH, numba.float64)
    gp = cuda.local.array(N_LAKE_PARAMS, numba.float64)
    glk = cuda.local.array(N_LAKE_PARAMS, numba.float64)
    for p in range(N_LAKE_PARAMS):
        glk[p] = 0.0
    lam_h = 0.0
    if lake >= 0 and ghd.shape[0] > 0:
        lam_h = ghd[n_t, lake]
    lam_next = 0.0
    if active:
        if g_rows > 0:
            lam_next = float(gdense[n_t if g_rows > 1 else 0, i])
        if gfinal.shape[0] > 0:
            lam_next += float(gfinal[i])
        if have_means:
            for m in range(obs_ptr[k], obs_ptr[k + 1]):
                lam_next += gmeans[n_rows - 1, obs_idx[m]] / substeps
    gql = 0.0
    for t in range(n_t - 1, -1, -1):
        s = n_t - 1 - t
        r = t // substeps
        qt = ql = lam = 0.0
        ph = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False, 0.0, 0.0, False, 0.0, 0.0, 0.0, False, 0.0)
        if active:
            _refresh(cb, t, t + 1 if t < n_t - 1 else -1, params, prow, lim, order, k)
            qt = float(out[t, i])
            ql = float(qlat[r, i])
            if g_rows > 0:
                lam = float(gdense[t if g_rows > 1 else 0, i])
            ph = _reach_physics(cb, k, qt, dt, leak, lim)
            if have_means and t > 0:
                for m in range(obs_ptr[k], obs_ptr[k + 1]):
                    lam += gmeans[(t - 1) // substeps, obs_idx[m]] / substeps
        g1 = g2 = g3 = g4 = gzr = 0.0
        _wait(progress, waitlist, 0, w_hi, s + 1)
        for lev in range(n_lev - 1, -1, -1):
            if lv == lev:
                mu = lam_next
                if dn >= 0:
                    if cross_dn:
                        mu += _load(bnd_c1nu, (s, bslot[dn]), True)
                        lam += _load(bnd_gu, (s, bslot[dn]), True)
                    else:
                        mu += c1nu[dn]
                        lam += gus[dn]
                usum, vsum = _upstream_states(out, t, k, order, up_ptr, up_idx, xdown)
                if lake >= 0:
                    for p in range(N_LAKE_PARAMS):
                        gp[p] = 0.0
                    gh0, gi0, gi1 = _lake_step_vjp(lake_h[t, lake], usum + ql, vsum + ql, dt,
                                                   _lake_params(lpar, lake), nwm, nmin, lam_h,
                                                   mu, hs, gp)  # fmt: skip
                    if ghd.shape[0] > 0:
                        gh0 += ghd[t, lake]
                    lam_h = gh0
                    for p in range(N_LAKE_PARAMS):
                        glk[p] += gp[p]
                    mc1, gu = gi1, gi0  # dI_{t+1}/dQ_{t+1} = dI_t/dQ_t = 1 upstream
                    if want_ql:
                        gql += gi0 + gi1
                else:
                    sent, mc1, gu, gq, gl3, g1, g2, g3, g4, gzr = _update_adjoint(
                        mu, ph[0], ph[1], ph[2], ph[3], ph[4], qt, ql, usum, vsum, leak, qmin
                    )
                    if sent:
                        if want_ql:
                            gql += gq
                        lam += gl3
                c1nu[k] = mc1
                gus[k] = gu
                if own_slot >= 0:
                    bnd_c1nu[s, own_slot] = mc1
                    bnd_gu[s, own_slot] = gu
                    cuda.threadfence()
            cuda.syncthreads()
        _publish(progress, b, s + 1)
        if active:
            if g1 != 0.0 or g2 != 0.0 or g3 != 0.0 or g4 != 0.0 or gzr != 0.0:
                res = _reach_vjp(cb, k, qt, ph, (g1, g2, g3, g4, gzr), dt, leak, lim)
                lam += res[0]
                for p in range(N_PARAMS):
                    gacc[p] += res[p + 1]
            for p in range(N_PARAMS):
                if prow[p] > 0 and t % prow[p] == 0:
                    if gparams[p].shape[0] > 0:
                        gparams[p][t // prow[p], i] = gacc[p]
                    gacc[p] = 0.0
            if want_ql and r > 0 and t % substeps == 0:
                gqlat[r, i] = gql
                gql = 0.0
        lam_next = lam
    # lam_next = dL/dQ_0
    if hot:
        if want_ql:
            _wait(progress, waitlist, 0, w_hi, n_t + 1)
            for lev in range(n_lev - 1, -1, -1):
                if lv == lev:
                    g = lam_next if acc0[k] >= qmin else 0.0
                    if dn >= 0:
                        g += _load(bnd_gu, (n_t, bslot[dn]), True) if cross_dn else gus[dn]
                    gus[k] = g
                    if own_slot >= 0:
                        bnd_gu[n_t, own_slot] = g
                        cuda.threadfence()
                    gql += g
                cuda.syncthreads()
            _publish(progress, b, n_t + 1)
    elif active:
        gq0[i] = lam_next if q0[i] >= qmin or lake >= 0 else 0.0
    if lake >= 0:
        lam_h_out[lake] = lam_h
        for p in range(N_LAKE_PARAMS):
            glake[lake, p] = glk[p]
    if active:
        if want_ql:
            gqlat[0, i] = gql
        for p in range(N_PARAMS):
            if prow[p] == 0 and gparams[p].shape[0] > 0:
                gparams[p][0, i] = gacc[p]
