"""The routing problem: which reaches are routed, what is read from them, their window inputs.

A :class:`RoutingProblem` is a sub-network (the upstream closure of some outlets) with its
outputs (gauges summing reaches, or every reach) and the per-reach lateral-inflow factors of the
gauges (``flow_scale``). :func:`window_inputs` slices the model inputs of one window of days to
the problem's reaches. Training batches, validation, evaluation and domain routing all carve
their problem here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork

if TYPE_CHECKING:
    from ddr_pipeline.data.containers import LakeTable, ModelInputs


@dataclass(frozen=True)
class RoutingProblem:
    """Reaches routed together and the outputs read from them.

    ``reach_index``: sorted global indices (into :class:`ModelInputs`) of the routed reaches;
    ``network``: the sub-network over them; ``outputs``: per output, the local reach indices whose
    discharges are summed (a gauge), or ``None`` to output every routed reach;
    ``inflow_scale``: ``(N,)`` float32 factors of the daily lateral inflow per routed reach
    (gauge ``flow_scale``), or ``None`` for none; ``lakes``: the inputs' lakes on the routed
    reaches, indexed into them (``None``: none), routed as lakes when ``routing.lakes`` is on.
    """

    reach_index: np.ndarray
    network: RiverNetwork
    outputs: tuple[np.ndarray, ...] | None
    inflow_scale: np.ndarray | None = None
    lakes: LakeTable | None = None

    @property
    def n_outputs(self) -> int:
        """Number of output series (gauges, or routed reaches)."""
        return self.network.n_reaches if self.outputs is None else len(self.outputs)


def reach_flow_scale(
    n_reaches: int, gauge_reach_index: Sequence[np.ndarray], flow_scale: np.ndarray | None
) -> np.ndarray:
    """Per-reach ``(n_reaches,)`` float32 lateral-inflow factors from per-gauge ``flow_scale``.

    Every reach of gauge ``g`` (``gauge_reach_index[g]``, indices into ``0..n_reaches-1``) gets
    ``flow_scale[g]``; other reaches get 1. A reach shared by gauges with different factors gets
    the smallest one. ``flow_scale=None`` means no scaling (all ones). DDR §3.6 (MERIT
    ``FLOW_SCALE``): the factor corrects a gauge reach whose unit catchment is larger than the
    gauge's drainage area.
    """
    scale = np.ones(n_reaches, dtype=np.float32)
    if flow_scale is None or not len(gauge_reach_index):
        return scale
    factors = np.asarray(flow_scale, dtype=np.float32)
    if factors.shape != (len(gauge_reach_index),):
        raise ValueError(
            f"flow_scale has shape {factors.shape}, expected ({len(gauge_reach_index)},)"
        )
    lengths = np.array([len(r) for r in gauge_reach_index], dtype=np.int64)
    reaches = np.concatenate([np.asarray(r, dtype=np.int64) for r in gauge_reach_index])
    np.minimum.at(scale, reaches, np.repeat(factors, lengths))
    return scale


def _closure(network: RiverNetwork, outlets: np.ndarray) -> tuple[np.ndarray, RiverNetwork]:
    closure = np.sort(np.asarray(network.upstream_closure(outlets), dtype=np.int64))
    sub, index_map = network.subnetwork(closure)
    if not np.array_equal(index_map, closure):
        raise RuntimeError("sub-network order differs from the requested reach order")
    return closure, sub


def gauge_problem(
    inputs: ModelInputs,
    gauge_reach_index: Sequence[np.ndarray],
    flow_scale: np.ndarray | None = None,
) -> RoutingProblem:
    """Problem over the union of the gauges' upstream closures; one output per gauge.

    ``flow_scale`` (``(G,)``, e.g. :attr:`GaugeSet.flow_scale`) scales the lateral inflow of
    each gauge's reaches (:func:`reach_flow_scale`).
    """
    if not len(gauge_reach_index):
        raise ValueError("a routing problem needs at least one gauge")
    outlets = np.unique(np.concatenate([np.asarray(g, dtype=np.int64) for g in gauge_reach_index]))
    closure, network = _closure(inputs.network, outlets)
    local_of = np.full(inputs.network.n_reaches, -1, dtype=np.int64)
    local_of[closure] = np.arange(closure.size)
    outputs = tuple(local_of[np.asarray(g, dtype=np.int64)] for g in gauge_reach_index)
    scale = None if flow_scale is None else reach_flow_scale(closure.size, outputs, flow_scale)
    return RoutingProblem(closure, network, outputs, scale, _lakes_on(inputs, closure))


def reach_problem(inputs: ModelInputs, target_ids: Sequence[int] | None = None) -> RoutingProblem:
    """All reaches (``target_ids`` None/empty) or the upstream closure of the target reach ids.

    Every routed reach is an output.
    """
    if not target_ids:
        everything = np.arange(inputs.network.n_reaches, dtype=np.int64)
        return RoutingProblem(everything, inputs.network, None, lakes=inputs.lakes)
    outlets = inputs.network.index_of(np.asarray(list(target_ids), dtype=np.int64))
    closure, network = _closure(inputs.network, np.asarray(outlets, dtype=np.int64))
    return RoutingProblem(closure, network, None, lakes=_lakes_on(inputs, closure))


def _lakes_on(inputs: ModelInputs, closure: np.ndarray) -> LakeTable | None:
    return None if inputs.lakes is None else inputs.lakes.on(closure)


@dataclass(frozen=True)
class WindowInputs:
    """Inputs of one window of days on a problem's reaches (local reach order)."""

    lateral_inflow: torch.Tensor  # (D, N) daily m3/s, gauge flow_scale applied
    forcings: torch.Tensor  # (D, N, F) z-scored
    attributes: torch.Tensor  # (N, A) z-scored
    attributes_raw: torch.Tensor  # (N, A)
    channel: dict[str, torch.Tensor]  # length, slope, x: (N,)
    observed_geometry: dict[str, torch.Tensor]  # parameter name -> observed (N,), NaN = none
    lakes: LakeTable | None = None  # the problem's lakes (numpy; the rollout makes tensors)

    @property
    def n_days(self) -> int:
        """Days of the window."""
        return int(self.lateral_inflow.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> WindowInputs:
        """A copy with every tensor on ``device`` (and in floating ``dtype`` when given)."""
        return WindowInputs(
            lateral_inflow=self.lateral_inflow.to(device, dtype),
            forcings=self.forcings.to(device, dtype),
            attributes=self.attributes.to(device, dtype),
            attributes_raw=self.attributes_raw.to(device, dtype),
            channel=_moved(self.channel, device, dtype),
            observed_geometry=_moved(self.observed_geometry, device, dtype),
            lakes=self.lakes,
        )


def _moved(
    tensors: Mapping[str, torch.Tensor], device: torch.device | str, dtype: torch.dtype | None
) -> dict:
    return {key: value.to(device, dtype) for key, value in tensors.items()}


def window_inputs(
    inputs: ModelInputs, problem: RoutingProblem, start: int, stop: int
) -> WindowInputs:
    """The inputs of day positions ``[start, stop)`` on the problem's reaches (CPU tensors)."""
    if not 0 <= start < stop <= len(inputs.dates):
        raise ValueError(f"window {start}..{stop} outside 0..{len(inputs.dates)}")
    idx = problem.reach_index
    days = slice(start, stop)
    inflow = torch.from_numpy(inputs.lateral_inflow[days][:, idx])
    if problem.inflow_scale is not None:
        inflow = inflow * torch.from_numpy(problem.inflow_scale)
    return WindowInputs(
        lateral_inflow=inflow,
        forcings=torch.from_numpy(inputs.forcings[days][:, idx]),
        attributes=torch.from_numpy(inputs.attributes[idx]),
        attributes_raw=torch.from_numpy(inputs.attributes_raw[idx]),
        channel={k: torch.from_numpy(v[idx]) for k, v in inputs.channel.items()},
        observed_geometry={
            k: torch.from_numpy(v[idx]) for k, v in inputs.observed_geometry.items()
        },
        lakes=problem.lakes,
    )
