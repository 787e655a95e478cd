"""Training pins torch's CPU thread count so runs repeat bitwise across processes."""

from __future__ import annotations

import torch

from ddr_pipeline.config import ExperimentConfig
from ddr_pipeline.training.rng import set_cpu_threads


def test_default_is_one_thread() -> None:
    assert ExperimentConfig().cpu_threads == 1


def test_set_cpu_threads_sets_and_none_leaves_unchanged() -> None:
    before = torch.get_num_threads()
    try:
        set_cpu_threads(1)
        assert torch.get_num_threads() == 1
        set_cpu_threads(None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
