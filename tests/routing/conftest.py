"""Routing tests: puts this folder on ``sys.path`` for ``routing_inputs`` and ``reference``;
the fixtures that cut the engines into many small blocks."""

from __future__ import annotations

import sys
from pathlib import Path

import numba
import pytest

from ddr_pipeline.routing import constants as K

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many small CPU blocks and short chunks, so a few hundred reaches make many tasks."""
    monkeypatch.setattr(K, "CPU_BLOCK_MIN_REACHES", 10)
    monkeypatch.setattr(K, "PARALLEL_MIN_REACHES", 20)
    monkeypatch.setattr(K, "PARALLEL_MIN_REACH_STEPS", 1)
    monkeypatch.setattr(K, "CPU_CHUNK_STEPS", 5)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 8)


@pytest.fixture
def cuda_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA blocks of at most 5 reaches and 3 levels: every basin spans several blocks."""
    monkeypatch.setattr(K, "CUDA_BLOCK_REACHES", 5)
    monkeypatch.setattr(K, "CUDA_BLOCK_LEVELS", 3)
