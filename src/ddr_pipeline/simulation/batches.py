"""Training batches: a set of gauges and a window -> one routing problem with its observations.

A training mini-batch is a set of gauges and a window (from the batch plan,
:mod:`ddr_pipeline.data.batch_plan`). :func:`build_batch` turns it into ONE routing problem
(:func:`ddr_pipeline.simulation.gauge_problem`: the union of the gauges' upstream networks, one
output per gauge) and its window inputs (:func:`ddr_pipeline.simulation.window_inputs`), plus
the observations.

The model-ready dataset in memory (:class:`~ddr_pipeline.data.containers.ModelInputs`) is
sliced by integer index; batches are routing problems, so this module lives in ``simulation``
(``data`` holds containers only and never imports the simulation).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.simulation.problem import (
    RoutingProblem,
    WindowInputs,
    gauge_problem,
    window_inputs,
)

logger = logging.getLogger(__name__)


@dataclass
class RoutingBatch:
    """One training routing problem: gauges, their window inputs and observations (CPU)."""

    problem: RoutingProblem  # sub-network of the gauges; one output per gauge
    window: WindowInputs  # daily inputs of the window on the problem's reaches
    dates: pd.DatetimeIndex  # (D,) days of the window
    observations: torch.Tensor  # (D, G) m3/s, NaN = missing
    staids: tuple[str, ...]

    @property
    def network(self) -> RiverNetwork:
        """The sub-network routed."""
        return self.problem.network

    @property
    def reach_index(self) -> np.ndarray:
        """``(N,)`` global reach indices of the local reaches."""
        return self.problem.reach_index

    @property
    def gauge_index(self) -> list[np.ndarray]:
        """Per gauge: local reach indices summed at the gauge."""
        return list(self.problem.outputs or ())

    @property
    def n_days(self) -> int:
        """Number of days of the window."""
        return len(self.dates)

    def to(self, device: torch.device | str) -> RoutingBatch:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(
            self, window=self.window.to(device), observations=self.observations.to(device)
        )


def build_batch(
    inputs: ModelInputs, gauges: GaugeSet, positions: Sequence[int], start: int, stop: int
) -> RoutingBatch:
    """The routing problem of the gauges at ``positions`` over day positions ``[start, stop)``.

    The daily lateral inflow of the batch gauges' reaches is multiplied by their ``flow_scale``
    (:func:`ddr_pipeline.simulation.reach_flow_scale`).
    """
    positions = [int(p) for p in positions]
    if not positions:
        raise ValueError("a batch needs at least one gauge")
    if not 0 <= start < stop <= len(inputs.dates):
        raise ValueError(f"window {start}..{stop} outside 0..{len(inputs.dates)}")
    flow_scale = None if gauges.flow_scale is None else gauges.flow_scale[positions]
    problem = gauge_problem(inputs, [gauges.reach_index[p] for p in positions], flow_scale)
    return RoutingBatch(
        problem=problem,
        window=window_inputs(inputs, problem, start, stop),
        dates=inputs.dates[start:stop],
        observations=torch.from_numpy(
            inputs.observations[start:stop][:, gauges.obs_column[positions]]
        ),
        staids=tuple(gauges.staids[p] for p in positions),
    )
