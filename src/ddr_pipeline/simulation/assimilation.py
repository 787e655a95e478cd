"""Streamflow data assimilation on the simulation path: gauge observations of a routing problem.

A :class:`GaugeAssimilation` holds the observed discharge at gauged reaches of a problem's
network over the whole input period (rows of daily means held over their routing steps, or one
row per routing step) and the nudging settings; :meth:`GaugeAssimilation.window` cuts the
engine's :class:`~ddr_pipeline.routing.nudging.Nudging` of one window, carrying the nudging
state of the previous window. ``until_step`` turns a rollout into a hindcast/forecast: no
observation from that step on (the correction then decays from the last one), so the flows after
it are a forecast issued at that time. Forward only: the engine refuses gradients with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ddr_pipeline.routing.nudging import Nudging, NudgingResult, NudgingState


@dataclass(frozen=True)
class GaugeAssimilation:
    """Observations nudged into a rollout and the nudging settings.

    Attributes:
        reaches: (G,) local indices (in the problem's network) of the gauged reaches.
        observations: (R, G) observed discharge (m³/s; NaN = missing or rejected); row r holds
            over routing steps ``r·steps_per_row … (r+1)·steps_per_row − 1`` counted from day
            position 0 of the inputs.
        steps_per_row: routing steps per row (``steps_per_day`` for daily series, 1 per step).
        gain: nudging gain G in [0, 1].
        decay_minutes: τ of the correction's decay after the last observation (minutes).
        until_step: no observation at steps >= this one (hindcast up to it, then forecast);
            None = every observation.
        names: (G,) gauge names for messages and tables (e.g. STAIDs).
    """

    reaches: np.ndarray
    observations: np.ndarray
    steps_per_row: int
    gain: float = 1.0
    decay_minutes: float = 120.0
    until_step: int | None = None
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        obs = np.asarray(self.observations)
        if obs.ndim != 2 or obs.shape[1] != np.asarray(self.reaches).size:
            raise ValueError(
                f"assimilation observations must be (rows, {np.asarray(self.reaches).size}), got {obs.shape}"
            )
        if self.steps_per_row < 1:
            raise ValueError(f"steps_per_row must be >= 1, got {self.steps_per_row}")

    def forecast_from(self, step: int) -> GaugeAssimilation:
        """The same observations, none from routing step ``step`` on."""
        return replace(self, until_step=int(step))

    def window(
        self, first_day: int, last_day: int, steps_per_day: int, state: NudgingState | None
    ) -> Nudging:
        """The engine's nudging of days ``[first_day, last_day)`` continuing from ``state``."""
        s0, s1 = first_day * steps_per_day, last_day * steps_per_day
        spr = self.steps_per_row
        r0, r1 = s0 // spr, -(-s1 // spr)
        if r1 > self.observations.shape[0]:
            raise ValueError(
                f"assimilation observations cover {self.observations.shape[0] * spr} steps, "
                f"the window needs up to step {s1} (day {last_day})"
            )
        obs = np.repeat(np.asarray(self.observations[r0:r1], np.float64), spr, axis=0)
        obs = obs[s0 - r0 * spr : s1 - r0 * spr].copy()
        if self.until_step is not None:
            obs[max(self.until_step - s0, 0) :] = np.nan
        return Nudging(
            np.asarray(self.reaches, np.int64), obs, self.gain, self.decay_minutes, state
        )


@dataclass(frozen=True)
class AssimilationRecord:
    """What a rollout with assimilation records: the daily mean correction per gauge and the
    nudging state at the end (for a later rollout or a restart)."""

    daily_correction: np.ndarray  # (days, G) m3/s
    state: NudgingState


def daily_correction(result: NudgingResult, steps_per_day: int) -> np.ndarray:
    """(days, G) mean of the per-step corrections of each day."""
    corr = result.corrections
    return corr.reshape(-1, steps_per_day, corr.shape[1]).mean(axis=1)
