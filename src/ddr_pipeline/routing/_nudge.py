"""Streamflow nudging of one gauged reach-step (docs/data_assimilation.md), shared by the engines.

:func:`nudge_value` is a numba function of plain floats: the CPU engine inlines it into its
sweep after a gauged reach's update, and the CUDA kernels recompile its source as a device
function (``_cuda_kernels.device_function``), so the two cannot drift. The torch reference
(``_torch_backend``) writes the same rule with tensor ops.

The rule (t-route's ``simple_da`` with a gain): with an observation ``obs`` at this step the
routed value Q moves toward it, Q + G·(obs − Q) (the observation itself when G = 1), and the
observation becomes the last one; without an observation but with a last one, it moves toward the
last observation with the weight G·exp(−age / τ), age = seconds since that observation; with
neither it is left alone. The result is floored at Q_min; the correction is the change made.
"""

from __future__ import annotations

import math

import numpy as np

from ddr_pipeline.routing._jit import njit

#: The kernels' ``da`` tuple of a call without nudging (``_mc_kernels._assimilate``: gauge of
#: each position, observations, last observation, its time, corrections, (gain, τ)).
NO_DA = (np.empty(0, np.int64), np.empty((0, 0)), np.empty(0), np.empty(0), np.empty((0, 0)),
         np.empty(0))  # fmt: skip


@njit(error_model="numpy", inline="always")
def nudge_value(  # noqa: PLR0913, PLR0917 (compiled kernel signature)
    model: float, obs: float, last_val: float, last_time: float, now: float, gain: float,
    decay: float, qmin: float,
) -> tuple[float, float, float, float]:  # fmt: skip
    """(Q, correction, last observation, its time) after nudging the routed ``model`` value at
    time ``now`` (s); ``obs`` NaN = no (valid) observation, ``last_val`` NaN = none yet,
    ``decay`` = τ (s; 0 = no persistence)."""
    if not math.isnan(obs):  # a valid observation at this step
        target, weight = obs, gain
        last_val, last_time = obs, now
    elif not math.isnan(last_val):  # persist the last observation, decaying
        target = last_val
        weight = gain * math.exp(-(now - last_time) / decay) if decay > 0.0 else 0.0
    else:
        return model, 0.0, last_val, last_time
    q = target if weight == 1.0 else model + weight * (target - model)
    q = max(q, qmin)
    return q, q - model, last_val, last_time
