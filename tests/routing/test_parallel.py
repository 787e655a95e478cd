"""The multi-threaded kernels give bitwise the same values and gradients as the serial path."""

from __future__ import annotations

import pytest
import torch
from reference import random_network
from routing_inputs import make_inputs

import ddr_pipeline.routing._threads as threads
from ddr_pipeline.routing import muskingum_cunge

N_REACHES, N_STEPS = 300, 30


def _route(monkeypatch: pytest.MonkeyPatch, n_threads: int, dtype: torch.dtype, leak: bool,
           time_varying: bool) -> list[torch.Tensor]:  # fmt: skip
    """Outputs and gradients of every input (random output weights) with ``n_threads`` chunks."""
    monkeypatch.setattr(threads, "PARALLEL_MIN_REACHES", 1)
    monkeypatch.setattr(threads, "routing_threads", lambda: n_threads)
    net = random_network(N_REACHES, seed=11)
    qlat, channel, params = make_inputs(
        N_REACHES, N_STEPS, 5, time_varying=time_varying, clamps=True, dtype=dtype
    )
    leaves = [qlat, *channel.values(), *params.values()]
    for leaf in leaves:
        leaf.requires_grad_(True)
    q = muskingum_cunge(net, qlat, channel=channel, params=params, leakance=leak)
    weights = torch.rand(q.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    (q * weights).sum().backward()
    return [q.detach(), *(leaf.grad for leaf in leaves)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("leak", [False, True])
@pytest.mark.parametrize("time_varying", [False, True])
def test_threaded_path_is_bitwise_serial(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, leak: bool, time_varying: bool
) -> None:
    serial = _route(monkeypatch, 1, dtype, leak, time_varying)
    for n_threads in (2, 3):  # 3: uneven chunks (more chunks than cores on a 2-core machine)
        threaded = _route(monkeypatch, n_threads, dtype, leak, time_varying)
        for a, b in zip(serial, threaded, strict=True):
            assert a.dtype == b.dtype
            assert torch.equal(a, b)


def test_thread_count_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(threads.ENV_THREADS, "1")
    assert threads.routing_threads() == 1
    monkeypatch.setenv(threads.ENV_THREADS, "0")
    with pytest.raises(ValueError, match=threads.ENV_THREADS):
        threads.routing_threads()
    monkeypatch.setenv(threads.ENV_THREADS, "two")
    with pytest.raises(ValueError, match="'two'"):
        threads.routing_threads()


def test_small_networks_run_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "routing_threads", lambda: 2)
    assert threads.kernel_chunks(threads.PARALLEL_MIN_REACHES - 1) == 1
    assert threads.kernel_chunks(threads.PARALLEL_MIN_REACHES) == 2
