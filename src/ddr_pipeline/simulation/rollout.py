"""The rollout: route a problem with a parameter source, one window or time chunks with state.

Every forward simulation of the project goes through :func:`rollout_window`: training
mini-batches and validation (with gradients or not), test scoring, evaluation, domain routing
and the untrained baseline. :func:`rollout` routes a long period in chunks of ``chunk_days``
days carrying the routing state (discharge of every reach) and the LSTM state ``(h, c)``, so
the result does not depend on the chunk size (up to float rounding) while the hourly working
set stays one chunk.

Time conventions (docs/routing.md): daily inputs and daily parameters are held over
``steps_per_day`` steps; the daily output of day ``d`` is the mean of the end-of-step states of
its steps, summed over a gauge's reaches, or, with an output-hour offset
(``RoutingSettings.output_shift_hours``, DDR's tau), of the steps shifted by it
(:mod:`ddr_pipeline.simulation.pooling`). A window starts from the hot start (accumulated
lateral inflow) unless an initial state is given. Inputs stay daily: the engine
(:func:`~ddr_pipeline.routing.muskingum_cunge_means`) sub-steps them itself and returns only
the daily means at the observed reaches and the final state, so no hourly copy and no dense
``(T+1, N)`` trajectory (or its gradient) exists; ``checkpoint_every`` stores only every k-th
routing state for the backward (bitwise the same values and gradients).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ddr_pipeline.models import LSTMState, NetworkOutputs, RoutingModel
from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import gather_gauges, muskingum_cunge, muskingum_cunge_means
from ddr_pipeline.routing.lakes import LevelPool
from ddr_pipeline.routing.nudging import Nudging, NudgingResult, NudgingState
from ddr_pipeline.simulation.assimilation import (
    AssimilationRecord,
    GaugeAssimilation,
    daily_correction,
)
from ddr_pipeline.simulation.lakes import level_pool, split_lake_parameters
from ddr_pipeline.simulation.pooling import ShiftedPooling
from ddr_pipeline.simulation.problem import RoutingProblem, WindowInputs, window_inputs
from ddr_pipeline.simulation.settings import RoutingSettings
from ddr_pipeline.simulation.sources import FeatureIndex, ParameterSource, TrainedParameters

if TYPE_CHECKING:
    from ddr_pipeline.data.containers import ModelInputs
    from ddr_pipeline.simulation.batches import RoutingBatch

logger = logging.getLogger(__name__)


@dataclass
class WindowResult:
    """Result of :func:`rollout_window`."""

    daily: torch.Tensor  # (D, outputs) daily mean discharge, m3/s
    params: dict[str, torch.Tensor]  # physical parameters handed to the routing
    final_state: torch.Tensor  # (N,) discharge of every reach at the end of the window
    lstm_state: LSTMState | None
    outputs: NetworkOutputs | None  # normalised network outputs (trained sources)
    assimilation: NudgingResult | None = None  # the window's nudging (None without)
    lake_elevation: torch.Tensor | None = None  # (L,) lakes' water elevation at the end (m)


def observed_reaches(
    outputs: tuple[np.ndarray, ...] | list[np.ndarray],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct reaches summed at the outputs, and each output's columns among them."""
    flat = np.concatenate([np.asarray(o, dtype=np.int64).ravel() for o in outputs])
    reaches, inverse = np.unique(flat, return_inverse=True)
    bounds = np.cumsum([0, *(np.asarray(o).size for o in outputs)])
    return reaches, [inverse[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def rollout_window(  # noqa: PLR0913 (the window, its source and its memory options)
    network: RiverNetwork,
    window: WindowInputs,
    source: ParameterSource,
    settings: RoutingSettings,
    *,
    outputs: tuple[np.ndarray, ...] | list[np.ndarray] | None = None,
    initial_state: torch.Tensor | None = None,
    lstm_state: LSTMState | None = None,
    checkpoint_every: int = 1,
    nudging: Nudging | None = None,
    pooled: bool = True,
    lake_elevation: torch.Tensor | None = None,
) -> WindowResult:
    """Route one window: parameters from ``source``, Muskingum-Cunge, daily means at ``outputs``.

    ``outputs``: per output the local reach indices summed (gauges), or ``None`` for every
    reach. ``checkpoint_every``: routing states stored for the backward (1 = all; k > 1
    recomputes k-step segments, same values). Runs in the caller's grad mode (training
    differentiates through it). ``nudging``: streamflow data assimilation at gauged reaches
    (forward only; the engine refuses it with gradients). With an output-hour offset the
    window's last day (offset > 0) or first day (< 0) pools only the routed part of its shifted
    day (:mod:`~ddr_pipeline.simulation.pooling`); ``pooled=False`` returns the block means
    ``(k·D, outputs)`` instead of daily values (:func:`rollout` pools across chunks).
    With ``routing.lakes`` on, the window's lakes route as level pools
    (:mod:`~ddr_pipeline.simulation.lakes`) from ``lake_elevation`` (None: the lakes table's
    initial elevation); the end elevation comes back in the result.
    """
    step = source(window, lstm_state)
    channel_params, lake_params = split_lake_parameters(step.physical)
    lakes = level_pool(window.lakes, lake_params, settings, lake_elevation)
    if outputs is None:
        reaches, columns = np.arange(network.n_reaches), None
    else:
        reaches, columns = observed_reaches(outputs)
    pool = ShiftedPooling(settings.steps_per_day, settings.shift_steps)
    if nudging is not None and not pool.identity:
        raise ValueError("output_shift_hours with streamflow nudging is not supported yet")
    n_days = window.lateral_inflow.shape[0]
    params = {
        name: pool.rows(value) if value.ndim == 2 and value.shape[0] == n_days else value
        for name, value in channel_params.items()
    }
    routed = muskingum_cunge_means(
        network,
        pool.rows(window.lateral_inflow),
        settings.channel(window.channel),
        params,
        reaches,
        checkpoint_every=checkpoint_every,
        substeps=pool.block_steps,
        initial_state=initial_state,
        nudging=nudging,
        lakes=lakes,
        **settings.engine_options(),
    )
    means = routed.means if columns is None else gather_gauges(routed.means, columns)
    if pooled and not pool.identity:
        means = pool.pool(means, n_days)
    return WindowResult(
        daily=means,
        params=step.physical,
        final_state=routed.final_state,
        lstm_state=step.state,
        outputs=step.outputs,
        assimilation=routed.assimilation,
        lake_elevation=None if routed.lakes is None else routed.lakes.final_elevation,
    )


class NonFiniteOutputsError(FloatingPointError):
    """The networks produced NaN/Inf parameters (exploded weights; the inputs are validated)."""


#: Normalised outputs closer than this to 0 or 1 sit at their physical range bound.
PINNED_EPS = 1e-6


@dataclass(frozen=True)
class RoutedSteps:
    """What :func:`route_steps` returns."""

    discharge: torch.Tensor  # (steps+1, N) states, row 0 = the initial state
    lake_elevation: torch.Tensor | None = None  # (L,) lakes' water elevation at the end (m)
    assimilation: NudgingResult | None = None  # the nudging's corrections and end state


def route_steps(  # noqa: PLR0913 (one routing call of a coupled model)
    network: RiverNetwork,
    inflow: torch.Tensor,
    channel: Mapping[str, torch.Tensor],
    params: Mapping[str, torch.Tensor],
    settings: RoutingSettings,
    *,
    steps: int = 1,
    initial_state: torch.Tensor | None = None,
    lakes: LevelPool | None = None,
    nudging: Nudging | None = None,
) -> RoutedSteps:
    """``steps`` routing steps of one lateral inflow row ``(N,)``: the ``(steps+1, N)`` states,
    with ``lakes`` the lakes' end elevation, with ``nudging`` its corrections and end state.

    The stepping path of a coupled model (BMI ``update``): the same engine, floors, leakance,
    Cunge options and level-pool lakes as :func:`rollout_window`; ``initial_state`` ``None`` is
    the hot start. ``params`` are the channel parameters only (:func:`split_lake_parameters`);
    ``lakes`` (:func:`level_pool` of the step's learned lake parameters and the carried
    elevation) routes the lake reaches as level pools; ``nudging`` moves gauged reaches toward
    their observations (forward only).
    """
    result = muskingum_cunge(
        network,
        inflow.reshape(1, -1),
        channel=settings.channel(channel),
        params=dict(params),
        substeps=steps,
        initial_state=initial_state,
        nudging=nudging,
        lakes=lakes,
        return_diagnostics=True,
        **settings.engine_options(),
    )
    elevation = None if result.lakes is None else result.lakes.final_elevation
    return RoutedSteps(result.discharge, elevation, result.assimilation)


def output_health(outputs: NetworkOutputs) -> tuple[bool, float]:
    """``(all finite, fraction of values pinned at a range bound)`` of the network outputs."""
    values = torch.cat(
        [v.detach().reshape(-1) for v in (*outputs.static.values(), *outputs.daily.values())]
    )
    if values.numel() == 0:
        return True, 0.0
    pinned = (values <= PINNED_EPS) | (values >= 1.0 - PINNED_EPS)
    return bool(torch.isfinite(values).all()), float(pinned.float().mean())


class _FiniteParameters:
    """A trained source that raises :class:`NonFiniteOutputsError` on NaN/Inf parameters.

    The inputs are validated finite, so the weights are to blame (exploded or non-finite), not
    the routing.
    """

    def __init__(self, source: ParameterSource) -> None:
        self.source = source

    def __call__(self, window: WindowInputs, state: LSTMState | None):  # noqa: ANN204
        step = self.source(window, state)
        bad = [n for n, v in step.physical.items() if not bool(torch.isfinite(v).all())]
        if bad:
            raise NonFiniteOutputsError(
                f"the networks produced NaN/Inf parameters {bad} (weights exploded or non-finite)"
            )
        return step


def physical_parameters(
    model: RoutingModel, batch: RoutingBatch, features: FeatureIndex
) -> tuple[NetworkOutputs | None, dict[str, torch.Tensor]]:
    """Network outputs and the physical parameters of a training batch (no routing).

    Raises :class:`NonFiniteOutputsError` when a parameter is NaN/Inf.
    """
    step = _FiniteParameters(TrainedParameters(model, features))(batch.window, None)
    return step.outputs, step.physical


def simulate(  # noqa: PLR0913 (the batch and its memory options)
    model: RoutingModel,
    batch: RoutingBatch,
    features: FeatureIndex,
    settings: RoutingSettings,
    *,
    checkpoint_every: int = 1,
    lstm_chunk: int | None = None,
) -> WindowResult:
    """Route a training batch (:class:`~ddr_pipeline.simulation.batches.RoutingBatch`) with ``model``.

    The model runs in its current mode (train: dropout on, gradients flow). ``checkpoint_every``
    and ``lstm_chunk`` (LSTM in checkpointed chunks of that many reaches) trade recomputation
    for memory (:mod:`ddr_pipeline.training.resources` picks them). Raises
    :class:`NonFiniteOutputsError` when the networks give NaN/Inf parameters.
    """
    return rollout_window(
        batch.problem.network,
        batch.window,
        _FiniteParameters(TrainedParameters(model, features, lstm_chunk=lstm_chunk)),
        settings,
        outputs=batch.problem.outputs,
        checkpoint_every=checkpoint_every,
    )


@dataclass
class RolloutResult:
    """Daily means ``(days, outputs)`` and per-reach parameter means over the routed days; with
    lakes, their water elevation at the end of the routing (``(L,)`` float64, m, in the order
    of ``problem.lakes``)."""

    daily: np.ndarray
    parameter_means: dict[str, np.ndarray]
    assimilation: AssimilationRecord | None = None
    lake_elevation: np.ndarray | None = None


def _accumulate(sums: dict[str, np.ndarray], params: Mapping[str, torch.Tensor], days: int) -> None:
    """Add each parameter's day-weighted per-reach values (static ones count every day)."""
    for name, values in params.items():
        per_day = values.sum(dim=0) if values.ndim == 2 else values * days
        sums[name] = sums.get(name, 0.0) + per_day.detach().double().cpu().numpy()


def _check_days(n_days: int, start: int, stop: int, chunk_days: int) -> None:
    if chunk_days < 1:
        raise ValueError(f"chunk_days must be >= 1, got {chunk_days}")
    if not 0 <= start < stop <= n_days:
        raise ValueError(f"day range {start}..{stop} outside 0..{n_days}")


@torch.no_grad()
def rollout(  # noqa: PLR0917 (the routing problem and its period)
    inputs: ModelInputs,
    problem: RoutingProblem,
    source: ParameterSource,
    settings: RoutingSettings,
    start: int,
    stop: int,
    *,
    chunk_days: int = 365,
    device: torch.device | str = "cpu",
    assimilation: GaugeAssimilation | None = None,
    nudging_state: NudgingState | None = None,
) -> RolloutResult:
    """Route day positions ``[start, stop)`` of ``inputs`` in chunks carrying the state.

    Returns the float32 daily mean discharge ``(stop - start, problem.n_outputs)`` (m³/s) and
    the mean physical parameters per routed reach (``(N,)`` each, daily ones averaged). With
    ``assimilation`` the gauged reaches are nudged toward their observations, the nudging state
    carried across chunks from ``nudging_state`` (None: no observation seen yet); the daily mean
    corrections and the end state come back in ``assimilation``. With ``routing.lakes`` on, the
    lakes' elevation is carried across chunks from the lakes table's initial elevation; its end
    (the end of the last routed day) comes back in ``lake_elevation``.
    """
    _check_days(len(inputs.dates), start, stop, chunk_days)
    pool = ShiftedPooling(settings.steps_per_day, settings.shift_steps)
    if assimilation is not None and not pool.identity:
        raise ValueError("output_shift_hours with streamflow nudging is not supported yet")
    # An output-hour offset needs the steps of the day after the period (or before it): route
    # that day too when the inputs have it, so the edge day pools all its steps.
    route_from = start - 1 if pool.shift_steps < 0 and start > 0 else start
    route_to = stop + 1 if pool.shift_steps > 0 and stop < len(inputs.dates) else stop
    blocks: list[np.ndarray] = []
    sums: dict[str, np.ndarray] = {}
    q_state: torch.Tensor | None = None
    lake_state: torch.Tensor | None = None
    lstm_state: LSTMState | None = None
    corrections: list[np.ndarray] = []
    for first in range(route_from, route_to, chunk_days):
        last = min(first + chunk_days, route_to)
        window = window_inputs(inputs, problem, first, last).to(device)
        nudging = None
        if assimilation is not None:
            nudging = assimilation.window(first, last, settings.steps_per_day, nudging_state)
        result = rollout_window(
            problem.network,
            window,
            source,
            settings,
            outputs=problem.outputs,
            initial_state=q_state,
            lstm_state=lstm_state,
            nudging=nudging,
            pooled=False,
            lake_elevation=lake_state,
        )
        q_state, lstm_state = result.final_state, result.lstm_state
        lake_state = result.lake_elevation
        if result.assimilation is not None:
            nudging_state = result.assimilation.state
            corrections.append(daily_correction(result.assimilation, settings.steps_per_day))
        blocks.append(result.daily.cpu().double().numpy())
        _accumulate(sums, result.params, last - first)
        logger.debug("routed days %d..%d", first, last)
    routed = np.concatenate(blocks)
    if not pool.identity:
        pooled = pool.pool(torch.from_numpy(routed), stop - start, first_day=start - route_from)
        routed = pooled.numpy()
    daily = routed.astype(np.float32)
    n_routed = route_to - route_from
    means = {name: (total / n_routed).astype(np.float32) for name, total in sums.items()}
    record = None
    if assimilation is not None and nudging_state is not None:
        record = AssimilationRecord(np.concatenate(corrections), nudging_state)
    end_levels = None if lake_state is None else lake_state.detach().double().cpu().numpy()
    return RolloutResult(
        daily=daily, parameter_means=means, assimilation=record, lake_elevation=end_levels
    )


@torch.no_grad()
def parameter_means(  # noqa: PLR0917 (the routing problem and its period)
    inputs: ModelInputs,
    problem: RoutingProblem,
    source: ParameterSource,
    start: int,
    stop: int,
    *,
    chunk_days: int = 365,
) -> dict[str, np.ndarray]:
    """Mean physical parameters per reach over days ``[start, stop)`` (networks only, no routing).

    The LSTM state is carried between chunks exactly as in :func:`rollout`.
    """
    _check_days(len(inputs.dates), start, stop, chunk_days)
    sums: dict[str, np.ndarray] = {}
    state: LSTMState | None = None
    for first in range(start, stop, chunk_days):
        last = min(first + chunk_days, stop)
        step = source(window_inputs(inputs, problem, first, last), state)
        state = step.state
        _accumulate(sums, step.physical, last - first)
    return {name: (total / (stop - start)).astype(np.float32) for name, total in sums.items()}
