"""Streamflow data assimilation in the engine: nudging gauged reaches toward observations.

Forward only (never in training): a routing call given a :class:`Nudging` refuses inputs that
require gradients. At each gauged reach, right after its update at step t, the routed Q_{t+1} is
moved toward the observation of that step (``observations[t]``; NaN = none) with the gain G, or,
without one, toward the last observation with the weight G·exp(−age/τ) (``_nudge.nudge_value``);
the corrected value is the reach's state, so the reaches downstream route it in the same step.
The state a later call continues from (last observation, its age, the last correction per gauge)
comes back in :class:`NudgingResult` and goes into the next call's :class:`Nudging`. The scheme,
its parameters and file formats: docs/data_assimilation.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork


@dataclass(frozen=True)
class NudgingState:
    """What nudging carries from one call (chunk, BMI update, restart) to the next, per gauge.

    Attributes:
        last_value: (G,) last valid observation (m³/s); NaN = none yet.
        age: (G,) seconds from that observation to the state's time; NaN = none yet.
        correction: (G,) correction applied at the state's last step (m³/s).
    """

    last_value: np.ndarray
    age: np.ndarray
    correction: np.ndarray

    @classmethod
    def empty(cls, n_gauges: int) -> NudgingState:
        """No observation seen yet at any of ``n_gauges`` gauges."""
        nan = np.full(n_gauges, np.nan)
        return cls(nan, nan.copy(), np.zeros(n_gauges))

    def check(self, n_gauges: int) -> None:
        """Shapes (G,) and consistent values, or ValueError naming the gauge index."""
        for name in ("last_value", "age", "correction"):
            arr = np.asarray(getattr(self, name))
            if arr.shape != (n_gauges,):
                raise ValueError(
                    f"nudging state {name} must have shape ({n_gauges},), got {arr.shape}"
                )
        seen = ~np.isnan(self.last_value)
        bad = np.flatnonzero(seen & ~(np.asarray(self.age) >= 0) | (~seen & ~np.isnan(self.age)))
        if bad.size:
            raise ValueError(
                f"nudging state: gauge index {int(bad[0])} has last_value {self.last_value[bad[0]]}"
                f" but age {self.age[bad[0]]} (age must be >= 0 with a value, NaN without)"
            )


@dataclass(frozen=True)
class Nudging:
    """Observations and settings of one routing call's nudging.

    Attributes:
        reaches: (G,) user indices of the gauged reaches (one gauge per reach).
        observations: (T, G) observed discharge (m³/s) at the end of each routing step
            (``observations[t]`` nudges Q_{t+1}); NaN = missing or rejected by quality.
        gain: G in [0, 1]: fraction of the gap to the observation closed at a step (1 = the
            observation replaces the routed value, t-route's scheme).
        decay_minutes: τ (minutes) of the correction's decay after the last observation
            (0 = no persistence; t-route's ``da_decay_coefficient``).
        state: the state of the previous call (None: no observation seen yet).
    """

    reaches: np.ndarray
    observations: np.ndarray
    gain: float = 1.0
    decay_minutes: float = 120.0
    state: NudgingState | None = field(default=None)

    @property
    def n_gauges(self) -> int:
        return int(np.asarray(self.reaches).size)

    def check(self, net: RiverNetwork, n_steps: int) -> None:
        """Shapes, ranges and unique in-range reaches, or ValueError naming the offender."""
        idx = np.asarray(self.reaches)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(
                f"nudging reaches must be a 1-D integer array, got {idx.dtype} {idx.shape}"
            )
        out = idx[(idx < 0) | (idx >= net.n_reaches)]
        if out.size:
            raise ValueError(f"nudging reach index {int(out[0])} outside [0, {net.n_reaches})")
        uniq, counts = np.unique(idx, return_counts=True)
        if np.any(counts > 1):
            dup = int(uniq[counts > 1][0])
            raise ValueError(f"nudging: reach {net.ids[dup]} (index {dup}) has more than one gauge")
        obs = np.asarray(self.observations)
        if obs.shape != (n_steps, idx.size):
            raise ValueError(
                f"nudging observations must be (T, G) = ({n_steps}, {idx.size}), got {obs.shape}"
            )
        bad = np.argwhere(np.isinf(obs) | (obs < 0))
        if bad.size:
            t, g = bad[0]
            raise ValueError(
                f"nudging observation of reach {net.ids[idx[g]]} at step {t} is {obs[t, g]}"
                " (must be >= 0 and finite; NaN = missing)"
            )
        if not 0.0 <= self.gain <= 1.0:
            raise ValueError(f"nudging gain must lie in [0, 1], got {self.gain}")
        if not (np.isfinite(self.decay_minutes) and self.decay_minutes >= 0):
            raise ValueError(
                f"nudging decay_minutes must be >= 0 and finite, got {self.decay_minutes}"
            )
        if self.state is not None:
            self.state.check(idx.size)


@dataclass(frozen=True)
class NudgingResult:
    """What a nudged call records.

    Attributes:
        corrections: (T, G) correction added to each gauge's routed Q_{t+1} (m³/s; 0 where the
            gauge had no observation, current or past).
        state: the state at the end of the call (the next call's ``Nudging.state``).
    """

    corrections: np.ndarray
    state: NudgingState


@dataclass(frozen=True)
class NudgingArrays:
    """A call's nudging as the kernels' ``da`` tuple (``_mc_kernels._assimilate``), filled in place."""

    nudging: Nudging
    arrays: tuple
    dt: float

    @classmethod
    def build(cls, nudging: Nudging, net: RiverNetwork, n_steps: int, dt: float) -> NudgingArrays:
        """Validate ``nudging`` and lay it out by topological position."""
        nudging.check(net, n_steps)
        idx = np.asarray(nudging.reaches, np.int64)
        state = nudging.state or NudgingState.empty(idx.size)
        position = np.empty(net.n_reaches, np.int64)
        position[net.routing_arrays()["order"]] = np.arange(net.n_reaches)
        gauge_of = np.full(net.n_reaches, -1, np.int64)
        gauge_of[position[idx]] = np.arange(idx.size)
        arrays = (
            gauge_of,
            np.ascontiguousarray(nudging.observations, np.float64),
            np.array(state.last_value, np.float64),
            -np.array(state.age, np.float64),  # time of the last observation, from the start
            np.zeros((n_steps, idx.size), np.float64),
            np.array([nudging.gain, nudging.decay_minutes * 60.0], np.float64),
        )
        return cls(nudging, arrays, dt)

    def result(self) -> NudgingResult:
        """The corrections and the end state after the kernels ran."""
        corr, last_val, last_time = self.arrays[4], self.arrays[2], self.arrays[3]
        n_t = corr.shape[0]
        prev = self.nudging.state
        final = corr[-1] if n_t else (prev.correction if prev else np.zeros(corr.shape[1]))
        age = n_t * self.dt - last_time
        return NudgingResult(corr.copy(), NudgingState(last_val.copy(), age, np.array(final)))


def refuse_gradients(tensors: dict[str, object]) -> None:
    """RuntimeError when any input requires a gradient: nudging is forward only."""
    if not torch.is_grad_enabled():
        return
    wanted = sorted(
        k for k, v in tensors.items() if isinstance(v, torch.Tensor) and v.requires_grad
    )
    if wanted:
        raise RuntimeError(
            "streamflow nudging (data assimilation) is forward only and never used in training, "
            f"but gradients were requested for {wanted}: route under torch.no_grad() or with "
            "inputs that do not require grad"
        )


def apply_quality(values: np.ndarray, quality: np.ndarray | None, min_quality: float) -> np.ndarray:
    """Observations with the rejected ones as NaN: non-finite or negative values, and those
    whose quality code is below ``min_quality`` (NWM time slices: 0–100, t-route's
    ``qc_threshold``)."""
    out = np.asarray(values, np.float64).copy()
    bad = ~np.isfinite(out) | (out < 0)
    if quality is not None:
        q = np.asarray(quality, np.float64)
        if q.shape != out.shape:
            raise ValueError(f"quality codes shape {q.shape} differs from observations {out.shape}")
        bad |= ~(q >= min_quality)
    out[bad] = np.nan
    return out
