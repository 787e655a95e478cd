"""Daily means with an output-hour offset (DDR's ``tau``), from the engine's sub-daily means.

Day ``d``'s value is the mean of the end-of-step states of steps ``S·d + 1 + s .. S·d + S + s``
(``S`` steps per day, ``s`` the signed offset in steps; ``s = 0`` is the engine's own daily
mean). The engine averages the states of each input row (:func:`ddr_pipeline.routing.
muskingum_cunge_means`), so the daily inputs are split into ``k = S / g`` rows of ``g =
gcd(S, |s|)`` steps each (the same Q′ and daily parameters repeated: the routing is unchanged,
bitwise), the engine returns the mean of every ``g``-step block at the observed reaches, and day
``d`` averages the ``k`` blocks starting at block ``k·d + s/g``. No engine change, no hourly
trajectory: the output grows from ``(D, R)`` to ``(k·D, R)`` and the input rows by ``k``.

At the edges of what was routed a day may lack some of its blocks (the last ``s`` steps after
the last routed day for ``s > 0``, the first ``|s|`` before the first for ``s < 0``): that day
is the mean of the blocks routed (documented, DDR drops such days instead).
:func:`ddr_pipeline.simulation.rollout` routes one more day at that edge when the inputs have
it, so periods routed in chunks are exact; a single training window is not extended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ShiftedPooling:
    """Block split and pooling of an output offset of ``shift_steps`` at ``steps_per_day``."""

    steps_per_day: int
    shift_steps: int = 0

    def __post_init__(self) -> None:
        if self.steps_per_day < 1 or abs(self.shift_steps) >= self.steps_per_day:
            raise ValueError(
                f"shift_steps={self.shift_steps} must be less than a day "
                f"({self.steps_per_day} steps)"
            )

    @property
    def identity(self) -> bool:
        """No offset: the engine's daily means are the result."""
        return self.shift_steps == 0

    @property
    def block_steps(self) -> int:
        """Steps per engine row (``g``): the largest block that tiles days and the offset."""
        return math.gcd(self.steps_per_day, abs(self.shift_steps)) or self.steps_per_day

    @property
    def blocks_per_day(self) -> int:
        """Engine rows per day (``k``)."""
        return self.steps_per_day // self.block_steps

    def rows(self, daily: torch.Tensor) -> torch.Tensor:
        """``(D, ...)`` daily rows repeated to ``(k·D, ...)`` engine rows (same values)."""
        if self.blocks_per_day == 1:
            return daily
        return daily.repeat_interleave(self.blocks_per_day, dim=0)

    def pool(self, blocks: torch.Tensor, n_days: int, first_day: int = 0) -> torch.Tensor:
        """Daily ``(n_days, M)`` values from block means ``(B, M)``.

        ``first_day``: whole days routed before the first output day (the blocks start
        ``first_day`` days earlier). Output day ``d`` averages blocks ``k·(d + first_day) +
        s/g .. + k − 1`` that exist (weights 1/#present; differentiable, no NaN).
        """
        k = self.blocks_per_day
        n_blocks = blocks.shape[0]
        days = torch.arange(n_days, device=blocks.device).unsqueeze(1) + first_day
        index = days * k + self.shift_steps // self.block_steps
        index = index + torch.arange(k, device=blocks.device).unsqueeze(0)  # (n_days, k)
        present = (index >= 0) & (index < n_blocks)
        count = present.sum(dim=1, keepdim=True)
        if bool((count == 0).any()):
            raise ValueError(
                f"{int((count == 0).sum())} output days have no routed block (blocks {n_blocks}, "
                f"days {n_days} from day {first_day}, shift {self.shift_steps} steps)"
            )
        weight = present.to(blocks.dtype) / count.to(blocks.dtype)
        values = blocks[index.clamp(0, n_blocks - 1)]  # (n_days, k, M)
        return (values * weight.unsqueeze(-1)).sum(dim=1)
