"""Time-resolution helpers and gauge gathering (all differentiable torch ops)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def repeat_daily(x: torch.Tensor, steps_per_day: int = 24) -> torch.Tensor:
    """Daily (D, ...) -> per-step (steps_per_day·D, ...) by repetition (conserves daily volume)."""
    if steps_per_day < 1:
        raise ValueError(f"steps_per_day must be >= 1, got {steps_per_day}")
    return torch.repeat_interleave(x, steps_per_day, dim=0)


def daily_mean(q: torch.Tensor, steps_per_day: int = 24) -> torch.Tensor:
    """(T+1, ...) states -> (T // steps_per_day, ...) daily means of the end-of-step states.

    Day d is the mean of Q[24d+1 .. 24d+24]; row 0 (the initial state) is not used.
    """
    n_steps = q.shape[0] - 1
    if n_steps < steps_per_day or n_steps % steps_per_day:
        raise ValueError(
            f"q must hold 1 + a whole number of days of {steps_per_day} steps, got {q.shape[0]} rows"
        )
    days = n_steps // steps_per_day
    return q[1:].reshape(days, steps_per_day, *q.shape[1:]).mean(dim=1)


def gauge_index(
    gauge_reaches: Sequence[Sequence[int] | np.ndarray], n_reaches: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten a ragged list of reach-index arrays into (reach_index, gauge_index) int64 arrays."""
    lists = [np.asarray(g, dtype=np.int64).ravel() for g in gauge_reaches]
    empty = [k for k, g in enumerate(lists) if g.size == 0]
    if empty:
        raise ValueError(f"gauges with no reaches at positions {empty[:20]}")
    reach = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    gauge = np.repeat(np.arange(len(lists), dtype=np.int64), [g.size for g in lists])
    bad = reach[(reach < 0) | (reach >= n_reaches)]
    if bad.size:
        raise IndexError(f"gauge reach indices out of range [0, {n_reaches}): {bad[:20].tolist()}")
    return reach, gauge


def gather_gauges(
    q: torch.Tensor, gauge_reaches: Sequence[Sequence[int] | np.ndarray]
) -> torch.Tensor:
    """(T, N) reach flows -> (T, G): each gauge sums the flows of its reach indices."""
    reach, gauge = gauge_index(gauge_reaches, q.shape[-1])
    r = torch.as_tensor(reach, device=q.device)
    g = torch.as_tensor(gauge, device=q.device)
    out = q.new_zeros(*q.shape[:-1], len(gauge_reaches))
    return out.index_add(-1, g, q.index_select(-1, r))
