"""Routing a trained model over a period: its parameter source, rollouts, gauge arrays.

The one "route the gauges over a period" path of evaluation, ensembles and selection; built on
:func:`ddr_pipeline.simulation.rollout`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ddr_pipeline import simulation
from ddr_pipeline.config.pipelines import BaselinesConfig
from ddr_pipeline.config.training import TrainingConfig
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.inference.periods import RoutedDays
from ddr_pipeline.model_store.checkpoints import LoadedCheckpoint
from ddr_pipeline.models import RoutingModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionSettings:
    """How a trained model is run over a period (from the ``evaluation`` / ``routing`` sections)."""

    warmup_days: int
    chunk_days: int
    device: str = "cpu"
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)  # evaluation
    nproc_per_node: int = 1  # routing: ranks that route independent basins in parallel

    def __post_init__(self) -> None:
        if self.chunk_days < 1:
            raise ValueError(f"chunk_days must be >= 1, got {self.chunk_days}")


def trained_source(ckpt: LoadedCheckpoint, inputs: ModelInputs) -> simulation.TrainedParameters:
    """Parameter source of the checkpoint's trained networks (eval mode) on ``inputs``."""
    return simulation.TrainedParameters.on_inputs(
        ckpt.model.eval(), ckpt.config, inputs.attribute_names, inputs.forcing_names
    )


def route_trained(  # noqa: PLR0917 (the run and its assimilation)
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    problem: simulation.RoutingProblem,
    days: RoutedDays,
    settings: PredictionSettings,
    assimilation: simulation.GaugeAssimilation | None = None,
    nudging_state: simulation.NudgingState | None = None,
) -> simulation.RolloutResult:
    """Route ``problem`` with the checkpoint's trained networks from the spin-up start to the end,
    nudged toward gauge observations with ``assimilation`` (from ``nudging_state``)."""
    return run_rollout(ckpt, inputs, problem, trained_source(ckpt, inputs), days.days, settings,
                       assimilation, nudging_state)  # fmt: skip


def run_rollout(  # noqa: PLR0917 (the rollout's inputs)
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    problem: simulation.RoutingProblem,
    source: simulation.ParameterSource,
    days: slice,
    settings: PredictionSettings,
    assimilation: simulation.GaugeAssimilation | None = None,
    nudging_state: simulation.NudgingState | None = None,
) -> simulation.RolloutResult:
    """:func:`ddr_pipeline.simulation.rollout` of ``days`` with the checkpoint's routing physics
    (``assimilation``, ``nudging_state``: its streamflow nudging)."""
    return simulation.rollout(
        inputs,
        problem,
        source,
        simulation.RoutingSettings.from_config(ckpt.config),
        days.start,
        days.stop,
        chunk_days=settings.chunk_days,
        device=settings.device,
        assimilation=assimilation,
        nudging_state=nudging_state,
    )


def known_gauges(inputs: ModelInputs, gauges: pd.DataFrame) -> GaugeSet:
    """Gauges of ``gauges`` with an observation series in ``inputs`` (others logged, dropped)."""
    known = gauges[gauges["STAID"].astype(str).isin(inputs.gage_ids)]
    dropped = sorted(set(gauges["STAID"].astype(str)) - set(known["STAID"].astype(str)))
    if dropped:
        logger.warning("gauges without an observation series are not evaluated: %s", dropped)
    return GaugeSet.from_table(known.reset_index(drop=True), inputs, split=None)


def gauge_array(
    values: np.ndarray, staids: Sequence[str], dates: pd.DatetimeIndex, units: str
) -> xr.DataArray:
    """``(gage_id, time)`` float32 array from ``(time, gauges)`` values."""
    return xr.DataArray(
        np.asarray(values, dtype=np.float32).T,
        dims=("gage_id", "time"),
        coords={"gage_id": np.asarray(staids, dtype=str), "time": dates},
        attrs={"units": units},
    )


@dataclass(frozen=True)
class GaugePrediction:
    """Daily discharge of gauges over the scored days: ``(gauges, days)`` float64 arrays."""

    staids: tuple[str, ...]
    dates: pd.DatetimeIndex
    simulated: np.ndarray
    observed: np.ndarray


def route_gauges(  # noqa: PLR0913 (the model, its data and the period)
    model: RoutingModel,
    config: TrainingConfig,
    inputs: ModelInputs,
    gauges: GaugeSet,
    scored: tuple[int, int],
    *,
    warmup_days: int,
) -> GaugePrediction:
    """THE "gauges over a period" path: route all ``gauges`` in one window starting
    ``warmup_days`` before the day positions ``scored`` (hot start, eval mode, no gradients) and
    return the scored days. Training's test scoring, ensembles and selection use it."""
    first, stop = scored
    start = max(first - int(warmup_days), 0)
    problem = simulation.gauge_problem(inputs, gauges.reach_index, gauges.flow_scale)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            routed = simulation.rollout(
                inputs,
                problem,
                simulation.TrainedParameters.on_inputs(
                    model, config, inputs.attribute_names, inputs.forcing_names
                ),
                simulation.RoutingSettings.from_config(config),
                start,
                stop,
                chunk_days=stop - start,
            )
    finally:
        model.train(was_training)
    observed = inputs.observations[first:stop][:, gauges.obs_column]
    return GaugePrediction(
        staids=tuple(gauges.staids),
        dates=inputs.dates[first:stop],
        simulated=routed.daily[first - start :].T.astype(np.float64),
        observed=observed.T.astype(np.float64),
    )
