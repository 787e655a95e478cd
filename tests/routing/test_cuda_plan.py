"""Block plan of the CUDA kernels (host side, no numba.cuda needed) and the device policy."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from reference import random_network

from ddr_pipeline.routing import constants as K
from ddr_pipeline.routing._cuda_plan import build_plan
from ddr_pipeline.routing.muskingum_cunge import choose_backend


@pytest.mark.parametrize(("max_reaches", "max_levels"), [(7, 4), (1, 1), (128, 32), (40, 2)])
def test_plan_respects_caps_and_dependencies(max_reaches: int, max_levels: int) -> None:
    net = random_network(300, seed=7)
    plan = build_plan(net, max_reaches, max_levels)
    arrs = net.routing_arrays()
    down, n = arrs["down"], net.n_reaches
    assert np.array_equal(np.sort(plan.slot_pos), np.arange(n))  # every reach in one slot
    counts = np.diff(plan.blk_ptr)
    assert counts.min() >= 1 and counts.max() <= max_reaches and plan.threads == counts.max()
    assert plan.blk_levels.max() <= max_levels
    block = np.repeat(np.arange(plan.n_blocks), counts)[np.argsort(plan.slot_pos)]
    level = plan.slot_level[np.argsort(plan.slot_pos)]
    for b in range(plan.n_blocks):  # slots sorted by local level inside a block
        lv = plan.slot_level[plan.blk_ptr[b] : plan.blk_ptr[b + 1]]
        assert np.all(np.diff(lv) >= 0) and lv.max() < plan.blk_levels[b]
    src = np.flatnonzero(down >= 0)
    dst = down[src]
    same = block[src] == block[dst]
    assert np.all(level[src][same] < level[dst][same])  # upstream first inside a block
    assert np.all(block[src][~same] < block[dst][~same])  # upstream blocks numbered first
    assert np.array_equal(plan.xdown[src].astype(bool), ~same)
    assert np.all(plan.bdown[block[src][~same]] == block[dst][~same])  # one downstream block
    fed = np.unique(dst[~same])
    assert plan.n_bslots == fed.size and np.all(plan.bslot[fed] >= 0)
    for b in range(plan.n_blocks):  # forward waits = blocks draining into b
        waits = set(plan.bup_idx[plan.bup_ptr[b] : plan.bup_ptr[b + 1]].tolist())
        assert waits == set(block[src][~same & (block[dst] == b)].tolist())


def test_plan_packs_whole_basins() -> None:
    net = random_network(300, seed=7)
    n_basins = int(net.is_outlet.sum())
    plan = build_plan(net, 300, 300)
    assert n_basins > 1 and plan.n_blocks == 1 and plan.n_bslots == 0


def test_auto_never_picks_an_unverified_or_slow_path(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert K.CUDA_KERNEL_VERIFIED  # verified on an H200 (docs/performance.md)
    assert choose_backend("auto", torch.device("cuda")) == "cuda"
    monkeypatch.setattr(K, "CUDA_KERNEL_VERIFIED", False)
    with caplog.at_level(logging.DEBUG, logger="ddr_pipeline.routing.muskingum_cunge"):
        assert choose_backend("auto", torch.device("cuda")) == "numba"
    assert "numba engine on the CPU" in caplog.text
    assert choose_backend("auto", torch.device("cpu")) == "numba"
    assert choose_backend("torch", torch.device("cuda")) == "torch"
    assert choose_backend("cuda", torch.device("cuda")) == "cuda"
    with pytest.raises(ValueError, match="backend must be one of"):
        choose_backend("gpu", torch.device("cpu"))
