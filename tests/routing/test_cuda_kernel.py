"""The CUDA kernel pair (``backend="cuda"``) against the numba engine: values, clamp volume and
gradients of every input.

Each test runs twice: on a real GPU (``pytest -m gpu``; skipped without a CUDA device) and in
numba-cuda's CPU simulator (``DDR_CUDA_SIMULATOR=1``, CPU tensors; what CI runs). numba.cuda is in
one mode per process, so the variant of the other mode skips itself when the first one already
imported it. The simulator runs one Python thread per CUDA thread: the problems are tiny, and
small block caps split them over many blocks so the cross-block (wavefront) paths are exercised.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from numba.core import config as numba_config
from reference import random_network
from routing_inputs import make_inputs

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import constants as K
from ddr_pipeline.routing import muskingum_cunge, muskingum_cunge_means

_GPU = pytest.param(
    "gpu",
    marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ],
)
INPUTS = ("length", "slope", "x", "n", "q_spatial", "p", "top_width", "side_slope", "K_D", "d_gw")


@pytest.fixture(params=[_GPU, "simulator"])
def kernel_device(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> torch.device:
    """Device of the tensors handed to ``backend="cuda"`` in this variant."""
    loaded = "numba.cuda" in sys.modules
    if request.param == "simulator":
        if loaded and not numba_config.ENABLE_CUDASIM:
            pytest.skip("numba.cuda already runs on the real GPU in this process")
        monkeypatch.setenv("DDR_CUDA_SIMULATOR", "1")
        return torch.device("cpu")
    if loaded and numba_config.ENABLE_CUDASIM:
        pytest.skip("numba.cuda already runs in the simulator in this process")
    monkeypatch.delenv("DDR_CUDA_SIMULATOR", raising=False)
    return torch.device("cuda")


def _route(backend: str, device: torch.device, net, qlat, channel, params, q0=None, **kw):
    """Discharge, clamp volume and the gradient of a weighted sum w.r.t. every input (CPU)."""
    leaves = {k: v.clone().to(device).requires_grad_() for k, v in {**channel, **params}.items()}
    leaves["lateral_inflow"] = qlat.clone().to(device).requires_grad_()
    if q0 is not None:
        leaves["initial_state"] = q0.clone().to(device).requires_grad_()
    res = muskingum_cunge(
        net, leaves["lateral_inflow"], {k: leaves[k] for k in channel},
        {k: leaves[k] for k in params}, initial_state=leaves.get("initial_state"),
        backend=backend, return_diagnostics=True, **kw,
    )  # fmt: skip
    q = res.discharge
    w = torch.linspace(0.1, 1.0, q.numel(), dtype=q.dtype, device=q.device).reshape(q.shape)
    (q * w).sum().backward()
    grads = {k: v.grad.cpu() for k, v in leaves.items()}
    return q.detach().cpu(), res.clamp_volume.cpu(), grads


def _compare(device, net, qlat, channel, params, *, rtol: float, q0=None, **kw) -> dict:
    q_ref, cv_ref, g_ref = _route(
        "numba", torch.device("cpu"), net, qlat, channel, params, q0, **kw
    )
    q, cv, g = _route("cuda", device, net, qlat, channel, params, q0, **kw)
    torch.testing.assert_close(q, q_ref, rtol=rtol, atol=0.0)
    torch.testing.assert_close(cv, cv_ref, rtol=rtol, atol=1e-12)
    assert set(g) == set(g_ref)
    for name, ref in g_ref.items():
        scale = float(ref.abs().max())
        torch.testing.assert_close(g[name], ref, rtol=rtol, atol=rtol * scale * 1e-3, msg=name)
    return {"clamp_volume": float(cv_ref.sum()), "grads": g_ref}


@pytest.mark.usefixtures("cuda_small_blocks")
@pytest.mark.parametrize(
    ("leakance", "time_varying", "hot", "options"),
    [
        (False, False, True, {}),
        (True, True, False, {}),
        (True, False, True, {"x_mode": "cunge", "celerity": "exact"}),
        (False, True, False, {"celerity": "exact"}),
        (False, True, True, {"x_mode": "cunge", "celerity": "exact", "geometry": "ddr"}),
        (False, False, False, {"geometry": "ddr"}),
    ],
)
def test_kernel_matches_numba_float64(
    kernel_device: torch.device, leakance: bool, time_varying: bool, hot: bool, options: dict
) -> None:
    """Every clamp active (make_inputs(clamps=True), v_max low), basins split over blocks; the
    Cunge options of ``_physics`` reach the kernel through the shared device functions."""
    net = random_network(14, seed=21)
    qlat, channel, params = make_inputs(14, 5, seed=9, clamps=True, time_varying=time_varying)
    q0 = None if hot else 2.0 * qlat[0]
    if not hot:
        q0[::4] = 0.0  # below q_min: the floor of the given state
    out = _compare(kernel_device, net, qlat, channel, params, rtol=1e-10, q0=q0,
                   leakance=leakance, v_max=0.6, **options)  # fmt: skip
    assert out["clamp_volume"] > 0  # the Q_min floor fired
    unused = {"x"} if "x_mode" in options else set()
    if options.get("geometry") == "ddr":
        unused |= {"top_width", "side_slope"}
    for name in ("lateral_inflow", *[n for n in INPUTS[:8] if n not in unused]):
        assert float(out["grads"][name].abs().max()) > 0, name
    if leakance:
        assert float(out["grads"]["K_D"].abs().max()) > 0


def test_kernel_matches_numba_float32_components(kernel_device: torch.device) -> None:
    """float32 storage; several independent basins packed into one block (default caps)."""
    ids = np.arange(1, 13)
    net = RiverNetwork.from_ids(ids, [2, 3, 0, 5, 6, 0, 8, 0, 0, 11, 0, 11])  # 5 basins
    qlat, channel, params = make_inputs(12, 6, seed=3, time_varying=True, dtype=torch.float32)
    _compare(kernel_device, net, qlat, channel, params, rtol=1e-5, leakance=True)


def test_kernel_long_chain_over_blocks(kernel_device: torch.device, monkeypatch) -> None:
    """A 24-reach chain cut into 4 blocks of 6 levels: the wavefront over blocks."""
    monkeypatch.setattr(K, "CUDA_BLOCK_LEVELS", 6)
    ids = np.arange(1, 25)
    net = RiverNetwork.from_ids(ids, np.append(ids[1:], 0))
    qlat, channel, params = make_inputs(24, 4, seed=5)
    _compare(kernel_device, net, qlat, channel, params, rtol=1e-10)


@pytest.mark.usefixtures("cuda_small_blocks")
def test_kernel_daily_rows_means_and_final_state(kernel_device: torch.device) -> None:
    """Daily rows (``substeps``) of Q′, n and d_gw; ``muskingum_cunge_means`` at repeated
    observed reaches plus the final state (sparse output gradient). The CPU reference stores
    every second state (time checkpointing); the kernels keep the full trajectory."""
    net = random_network(10, seed=3)
    qlat, channel, params = make_inputs(10, 3, seed=4, time_varying=True)
    reaches = [0, 4, 4, 9]
    results = {}
    for backend, device, every in (("numba", torch.device("cpu"), 2), ("cuda", kernel_device, 1)):
        leaves = {k: v.clone().to(device).requires_grad_()
                  for k, v in {**channel, **params, "lateral_inflow": qlat}.items()}  # fmt: skip
        res = muskingum_cunge_means(
            net, leaves["lateral_inflow"], {k: leaves[k] for k in channel},
            {k: leaves[k] for k in params}, reaches, checkpoint_every=every, substeps=2,
            leakance=True, backend=backend,
        )  # fmt: skip
        w = torch.linspace(0.5, 1.5, res.means.numel(), dtype=res.means.dtype, device=device)
        ((res.means * w.reshape(res.means.shape)).sum() + res.final_state[::3].sum()).backward()
        results[backend] = (res, {k: v.grad.cpu() for k, v in leaves.items()})
    (ref, g_ref), (got, g_got) = results["numba"], results["cuda"]
    torch.testing.assert_close(got.means.cpu(), ref.means, rtol=1e-10, atol=0.0)
    torch.testing.assert_close(got.final_state.cpu(), ref.final_state, rtol=1e-10, atol=0.0)
    torch.testing.assert_close(got.clamp_volume.cpu(), ref.clamp_volume, rtol=1e-10, atol=1e-12)
    for name, g in g_ref.items():
        assert float(g.abs().max()) > 0, name
        torch.testing.assert_close(g_got[name], g, rtol=1e-10, atol=1e-13 * float(g.abs().max()),
                                   msg=name)  # fmt: skip


@pytest.mark.usefixtures("cuda_small_blocks")
def test_kernel_nudging_matches_numba(kernel_device: torch.device) -> None:
    """Streamflow nudging (forward only) at gauges spread over several blocks, some observed,
    some persisting a carried last observation: states, corrections and end state as numba."""
    from ddr_pipeline.routing.nudging import Nudging, NudgingState

    net = random_network(14, seed=21)
    qlat, channel, params = make_inputs(14, 6, seed=9, clamps=True)
    rng = np.random.default_rng(1)
    gauges = np.array([0, 3, 8, 13])
    obs = rng.uniform(0.5, 9.0, (6, 4))
    obs[rng.random(obs.shape) < 0.5] = np.nan
    state = NudgingState(np.array([2.0, np.nan, 4.0, np.nan]),
                         np.array([600.0, np.nan, 0.0, np.nan]), np.zeros(4))  # fmt: skip
    nud = Nudging(gauges, obs, gain=0.7, decay_minutes=60.0, state=state)
    out = {}
    for backend, device in (("numba", torch.device("cpu")), ("cuda", kernel_device)):
        with torch.no_grad():
            out[backend] = muskingum_cunge(
                net, qlat.to(device), {k: v.to(device) for k, v in channel.items()},
                {k: v.to(device) for k, v in params.items()}, backend=backend, nudging=nud,
                return_diagnostics=True, leakance=True,
            )  # fmt: skip
    a, b = out["numba"], out["cuda"]
    torch.testing.assert_close(b.discharge.cpu(), a.discharge, rtol=1e-10, atol=0.0)
    np.testing.assert_allclose(b.assimilation.corrections, a.assimilation.corrections,
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    np.testing.assert_array_equal(b.assimilation.state.last_value, a.assimilation.state.last_value)
    assert np.any(a.assimilation.corrections != 0)
