"""Seeding, capture/restore and isolation of every global random number generator.

States are stored as plain types and tensors so checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) and request deterministic algorithms.

    Deterministic mode would also fill every new ``torch.empty`` buffer with NaN: that touches
    (and so commits) every page of memory the code then overwrites anyway, doubling the
    LSTM's activation traffic, and protects nothing, because no result here reads memory it
    did not write (the bitwise tests run without the fill). It is turned off.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def global_rng_state() -> dict[str, Any]:
    """The states of the python, numpy and torch (CPU, CUDA) global generators."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by :func:`global_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed torch/numpy/python RNGs with ``seed`` inside the block; restore all states after.

    pykan's constructor re-seeds every global RNG; wrapping construction in this context keeps
    the caller's random streams unchanged and makes the built weights depend on ``seed`` only.
    """
    saved = global_rng_state()
    try:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        yield
    finally:
        set_global_rng_state(saved)
