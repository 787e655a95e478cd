"""Memory-lean routing variants equal the dense hourly path: per-row (daily) inputs, interval
means at observed reaches with their sparse output gradient, and time checkpointing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from reference import random_network
from routing_inputs import make_inputs

from ddr_pipeline.routing import daily_mean, muskingum_cunge, muskingum_cunge_means

N, DAYS, S = 40, 5, 6  # reaches, input rows, sub-steps per row
DAILY = ("n", "d_gw")
OBS = [3, 17, 17, 39, 0]  # repeats allowed


def _daily_inputs(dtype: torch.dtype, clamps: bool = False):
    """Daily Q′ and daily n, d_gw (rows), every other input static."""
    qlat, channel, params = make_inputs(N, DAYS, 9, time_varying=True, clamps=clamps, dtype=dtype)
    return random_network(N, seed=5), qlat, channel, params


def _leaves(qlat, channel, params):
    leaves = {"lateral_inflow": qlat, **channel, **params}
    return {k: v.detach().clone().requires_grad_() for k, v in leaves.items()}


def _split(leaves):
    channel = {k: leaves[k] for k in ("length", "slope", "x")}
    params = {k: v for k, v in leaves.items() if k not in channel and k != "lateral_inflow"}
    return leaves["lateral_inflow"], channel, params


def _grads(leaves) -> dict[str, torch.Tensor]:
    return {k: v.grad for k, v in leaves.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_daily_rows_equal_hourly_expansion(dtype: torch.dtype) -> None:
    net, qlat, channel, params = _daily_inputs(dtype, clamps=True)
    weights = torch.rand(DAYS * S + 1, N, generator=torch.Generator().manual_seed(1), dtype=dtype)

    rows = _leaves(qlat, channel, params)
    ql, ch, pa = _split(rows)
    q_rows = muskingum_cunge(net, ql, ch, pa, substeps=S, leakance=True)
    (q_rows * weights).sum().backward()

    hourly = _leaves(qlat, channel, params)
    ql, ch, pa = _split(hourly)
    expand = {k: (v.repeat_interleave(S, 0) if k in DAILY else v) for k, v in pa.items()}
    q_hourly = muskingum_cunge(net, ql.repeat_interleave(S, 0), ch, expand, leakance=True)
    (q_hourly * weights).sum().backward()

    assert torch.equal(q_rows, q_hourly)  # same arithmetic step by step
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 0}
    for name, g in _grads(rows).items():  # row sums in float64 vs autograd's sum of step rows
        torch.testing.assert_close(g, hourly[name].grad, **tol, msg=name)


@pytest.mark.parametrize("hot", [True, False])
def test_means_equal_dense_daily_means(hot: bool) -> None:
    dtype = torch.float64
    net, qlat, channel, params = _daily_inputs(dtype, clamps=True)
    gen = torch.Generator().manual_seed(3)
    w_means = torch.rand(DAYS, len(OBS), generator=gen, dtype=dtype)
    w_final = torch.rand(N, generator=gen, dtype=dtype)
    q0 = None if hot else torch.linspace(0.5, 4.0, N, dtype=dtype)

    sparse = _leaves(qlat, channel, params)
    ql, ch, pa = _split(sparse)
    res = muskingum_cunge_means(net, ql, ch, pa, OBS, substeps=S, leakance=True, initial_state=q0)
    ((res.means * w_means).sum() + (res.final_state * w_final).sum()).backward()

    dense = _leaves(qlat, channel, params)
    ql, ch, pa = _split(dense)
    q = muskingum_cunge(net, ql, ch, pa, substeps=S, leakance=True, initial_state=q0)
    means = daily_mean(q, S)[:, OBS]
    ((means * w_means).sum() + (q[-1] * w_final).sum()).backward()

    torch.testing.assert_close(res.means, means, rtol=1e-13, atol=0)
    assert torch.equal(res.final_state, q[-1])
    for name, g in _grads(sparse).items():
        torch.testing.assert_close(g, dense[name].grad, rtol=1e-11, atol=1e-16, msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_checkpointing_is_bitwise(dtype: torch.dtype) -> None:
    net, qlat, channel, params = _daily_inputs(dtype, clamps=True)
    gen = torch.Generator().manual_seed(4)
    w_means = torch.rand(DAYS, len(OBS), generator=gen, dtype=dtype)
    w_final = torch.rand(N, generator=gen, dtype=dtype)
    runs = []
    for every in (1, 4, 5, 7, DAYS * S, DAYS * S + 3):  # 4, 7: the last segment is shorter
        leaves = _leaves(qlat, channel, params)
        ql, ch, pa = _split(leaves)
        res = muskingum_cunge_means(
            net, ql, ch, pa, OBS, substeps=S, leakance=True, checkpoint_every=every
        )
        ((res.means * w_means).sum() + (res.final_state * w_final).sum()).backward()
        runs.append([res.means, res.final_state, res.clamp_volume, *_grads(leaves).values()])
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["lateral_inflow", "n", "d_gw", "x", "top_width"])
def test_gradcheck_means_with_checkpointing(name: str) -> None:
    net = random_network(5, seed=11)
    qlat, channel, params = make_inputs(5, 3, 4, time_varying=True)  # 3 daily rows
    x0 = {"lateral_inflow": qlat, **channel, **params}[name].clone().requires_grad_()

    def f(x: torch.Tensor):
        c = {k: (x if k == name else v) for k, v in channel.items()}
        p = {k: (x if k == name else v) for k, v in params.items()}
        ql = x if name == "lateral_inflow" else qlat
        r = muskingum_cunge_means(
            net, ql, c, p, [0, 2, 4], substeps=4, leakance=True, checkpoint_every=5
        )
        return r.means, r.final_state

    assert torch.autograd.gradcheck(f, (x0,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_torch_backend_matches_numba_with_rows() -> None:
    net, qlat, channel, params = _daily_inputs(torch.float64)
    kw = {"substeps": S, "leakance": True}
    a = muskingum_cunge_means(net, qlat, channel, params, OBS, **kw)
    b = muskingum_cunge_means(net, qlat, channel, params, OBS, backend="torch", **kw)
    torch.testing.assert_close(a.means, b.means, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a.final_state, b.final_state, rtol=1e-10, atol=1e-12)


def test_bad_rows_and_options_are_named() -> None:
    net, qlat, channel, params = _daily_inputs(torch.float64)
    with pytest.raises(ValueError, match=r"n must be .*\(5, 40\) \(per input row\)"):
        muskingum_cunge(net, qlat, channel, {**params, "n": params["n"][:2]}, substeps=S)
    with pytest.raises(ValueError, match="substeps"):
        muskingum_cunge(net, qlat, channel, params, substeps=0)
    with pytest.raises(ValueError, match="checkpoint_every"):
        muskingum_cunge_means(net, qlat, channel, params, OBS, checkpoint_every=0)
    with pytest.raises(IndexError, match=r"\[40\]"):
        muskingum_cunge_means(net, qlat, channel, params, [1, 40])


def test_routing_keeps_torch_thread_count() -> None:
    """The engine must leave torch's thread count as the caller set it, also when it routes on
    several threads (numba's OpenMP layer, which the engine no longer starts, would reset it;
    fresh process)."""
    code = textwrap.dedent(
        """
        import torch
        torch.set_num_threads(1)
        from ddr_pipeline.routing import constants as K
        K.PARALLEL_MIN_REACHES = K.CPU_BLOCK_MIN_REACHES = K.PARALLEL_MIN_REACH_STEPS = 1
        from reference import random_network
        from routing_inputs import make_inputs
        from ddr_pipeline.routing import muskingum_cunge
        qlat, channel, params = make_inputs(30, 4, 0)
        qlat.requires_grad_()
        net = random_network(30, seed=1)
        muskingum_cunge(net, qlat, channel, params, threads=2).sum().backward()
        print(torch.get_num_threads())
        """
    )
    env_path = ":".join(sys.path)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": env_path, "NUMBA_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip().splitlines()[-1] == "1"
