"""The task-parallel CPU engine: bitwise the serial values and gradients for any cut and thread
count, its block plan, its scheduler and where its thread count comes from."""

from __future__ import annotations

import threading

import numba
import numpy as np
import pytest
import torch
from reference import random_network
from routing_inputs import make_inputs

import ddr_pipeline.routing._threads as threads
from ddr_pipeline.routing import constants as K
from ddr_pipeline.routing import muskingum_cunge, muskingum_cunge_means
from ddr_pipeline.routing._cpu_engine import layout
from ddr_pipeline.routing._cpu_plan import build_cpu_plan
from ddr_pipeline.routing._scheduler import run_tasks

N_REACHES, N_STEPS = 300, 48
OBS = np.array([3, 7, 7, 299, 150, 0])


def _leaves(dtype: torch.dtype, time_varying: bool, daily: bool) -> tuple[torch.Tensor, dict, dict]:
    qlat, channel, params = make_inputs(
        N_REACHES, N_STEPS, 5, time_varying=time_varying, clamps=True, dtype=dtype
    )
    if daily:  # one row per 24 steps, like training
        qlat = qlat[::24].contiguous()
        params = {k: v[::24].contiguous() if v.dim() == 2 else v for k, v in params.items()}
    for leaf in [qlat, *channel.values(), *params.values()]:
        leaf.requires_grad_(True)
    return qlat, channel, params


def _route(n_threads: int, dtype: torch.dtype, leak: bool, time_varying: bool, mode: str):
    """Outputs and gradients of every input (random output weights) on ``n_threads`` threads;
    ``mode``: dense trajectory, or means at observed reaches with ``checkpoint_every`` 1 or 7."""
    net = random_network(N_REACHES, seed=11)
    qlat, channel, params = _leaves(dtype, time_varying, daily=mode != "dense")
    q0 = torch.rand(N_REACHES, generator=torch.Generator().manual_seed(3), dtype=dtype) * 3
    q0.requires_grad_(True)
    opts = {"leakance": leak, "threads": n_threads, "initial_state": q0}
    gen = torch.Generator().manual_seed(2)
    if mode == "dense":
        res = muskingum_cunge(net, qlat, channel, params, return_diagnostics=True, **opts)
        outs = [res.discharge, res.clamp_volume]
    else:
        every = 1 if mode == "means1" else 7
        m = muskingum_cunge_means(net, qlat, channel, params, OBS, checkpoint_every=every,
                                  substeps=24, **opts)  # fmt: skip
        outs = [m.means, m.final_state, m.clamp_volume]
    loss = sum((o * torch.rand(o.shape, generator=gen, dtype=dtype)).sum() for o in outs[:-1])
    loss.backward()
    leaves = [qlat, q0, *channel.values(), *params.values()]
    return [o.detach() for o in outs] + [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("leak", [False, True])
@pytest.mark.parametrize("time_varying", [False, True])
@pytest.mark.parametrize("mode", ["dense", "means1", "means7"])
@pytest.mark.usefixtures("small_blocks")
def test_task_parallel_engine_is_bitwise_serial(
    dtype: torch.dtype, leak: bool, time_varying: bool, mode: str
) -> None:
    serial = _route(1, dtype, leak, time_varying, mode)
    for n_threads in (2, 3):  # 3: more threads than cores on a 2-core machine
        assert layout(N_REACHES, N_STEPS, n_threads).blocks > n_threads
        parallel = _route(n_threads, dtype, leak, time_varying, mode)
        for a, b in zip(serial, parallel, strict=True):
            assert a.dtype == b.dtype
            assert torch.equal(a, b)


def test_block_plan_links_blocks_upstream_first() -> None:
    net = random_network(N_REACHES, seed=11)
    arrs = net.routing_arrays()
    down, up_ptr, up_idx = arrs["down"], arrs["up_ptr"], arrs["up_idx"]
    plan = build_cpu_plan(down, up_ptr, up_idx, 7)
    block = plan.block_of(np.arange(N_REACHES))
    assert plan.n_blocks == 7 and np.all(np.diff(block) >= 0)
    cross = (down >= 0) & (block[np.maximum(down, 0)] != block)
    assert np.array_equal(plan.src_pos, np.flatnonzero(cross))
    # every cross link is a ghost of the consuming block, and blocks depend on earlier ones only
    for s, j in enumerate(plan.src_pos):
        consumer = block[down[j]]
        assert s in plan.ghost_slot[plan.ghost_ptr[consumer] : plan.ghost_ptr[consumer + 1]]
        ups = plan.up_blocks[plan.up_ptr[consumer] : plan.up_ptr[consumer + 1]]
        assert block[j] in ups and block[j] < consumer
    inside = plan.xup_idx < N_REACHES
    assert np.array_equal(plan.xup_idx[inside], up_idx[inside])
    assert np.array_equal(plan.src_pos[plan.xup_idx[~inside] - N_REACHES], up_idx[~inside])


@pytest.mark.parametrize("reverse", [False, True])
def test_scheduler_runs_every_task_after_its_dependencies(reverse: bool) -> None:
    net = random_network(N_REACHES, seed=11)
    arrs = net.routing_arrays()
    plan = build_cpu_plan(arrs["down"], arrs["up_ptr"], arrs["up_idx"], 9)
    preds = (plan.down_ptr, plan.down_blocks) if reverse else (plan.up_ptr, plan.up_blocks)
    succs = (plan.up_ptr, plan.up_blocks) if reverse else (plan.down_ptr, plan.down_blocks)
    done: list[tuple[int, int]] = []
    lock = threading.Lock()

    def run(b: int, q: int) -> None:
        with lock:
            finished = set(done)
        assert q == 0 or (b, q - 1) in finished
        for a in preds[1][preds[0][b] : preds[0][b + 1]]:
            assert (int(a), q) in finished
        with lock:
            done.append((b, q))

    run_tasks(run, plan.n_blocks, 6, preds[0], *succs, threads=3, reverse=reverse)
    assert sorted(done) == [(b, q) for b in range(plan.n_blocks) for q in range(6)]


def test_scheduler_hands_a_task_error_to_the_caller() -> None:
    ptr = np.zeros(5, np.int64)

    def run(b: int, q: int) -> None:
        if (b, q) == (2, 1):
            raise RuntimeError("task failed")

    with pytest.raises(RuntimeError, match="task failed"):
        run_tasks(run, 4, 3, ptr, ptr, np.zeros(0, np.int64), threads=2, reverse=False)


def test_thread_count_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 4)
    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert threads.routing_threads() == 3  # torch's count (experiment.threads sets it)
    monkeypatch.setenv(threads.ENV_THREADS, "2")
    assert threads.routing_threads() == 2
    assert threads.routing_threads(1) == 1  # the routing call's argument wins
    assert threads.routing_threads(16) == 4  # capped at NUMBA_NUM_THREADS
    for bad in ("0", "two"):
        monkeypatch.setenv(threads.ENV_THREADS, bad)
        with pytest.raises(ValueError, match=threads.ENV_THREADS):
            threads.routing_threads()
    with pytest.raises(ValueError, match="threads"):
        threads.routing_threads(0)


def test_threads_argument_is_validated() -> None:
    qlat, channel, params = make_inputs(20, 4, 0)
    with pytest.raises(ValueError, match="threads"):
        muskingum_cunge(random_network(20, seed=1), qlat, channel, params, threads=0)


def test_layout_rule() -> None:
    assert layout(K.PARALLEL_MIN_REACHES - 1, 1000, 2).threads == 1  # small: one thread
    assert layout(1000, K.PARALLEL_MIN_REACH_STEPS // 1000 - 1, 2).threads == 1  # short call
    assert layout(10_000, 1000, 1) == layout(10_000, 1000, 1)
    assert layout(10_000, 1000, 1).blocks == 1
    many = layout(10_000, 1000, 2)
    assert many.threads == 2 and many.blocks == 2 * K.CPU_BLOCKS_PER_THREAD
    assert layout(10_000, 1000, 2, per_step_user=True).blocks == 2
