"""Domain routing split over ranks by independent basins.

Reaches of different basins (outlet trees) never exchange water, so a domain is routed as
``world_size`` independent sub-domains: basins are dealt largest first to the rank with the
fewest reaches so far (ties: the lower rank). Every rank routes its basins with the same
sequential chunked rollout as a single process (:func:`ddr_pipeline.simulation.rollout`);
rank 0 gathers the daily series and puts them back in the domain's reach order. The result
equals the single-process one up to float32 rounding (the networks run on fewer reaches per
matrix product). A domain that is one large basin gives one rank almost all the work (the split
never cuts a basin).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ddr_pipeline import simulation
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.distributed.context import RankContext
from ddr_pipeline.distributed.launch import LaunchSettings, launch
from ddr_pipeline.model_store.checkpoints import LoadedCheckpoint


def basin_shards(
    inputs: ModelInputs, domain: simulation.RoutingProblem, world_size: int
) -> list[np.ndarray]:
    """Per rank, the global reach indices of the domain's basin outlets it routes."""
    outlets = domain.reach_index[np.flatnonzero(domain.network.is_outlet)]
    sizes = [inputs.network.upstream_closure(np.array([o])).size for o in outlets]
    load = [0] * world_size
    shards: list[list[int]] = [[] for _ in range(world_size)]
    for i in sorted(range(len(outlets)), key=lambda i: (-sizes[i], i)):
        rank = min(range(world_size), key=lambda r: (load[r], r))
        shards[rank].append(int(outlets[i]))
        load[rank] += sizes[i]
    return [np.sort(np.asarray(s, dtype=np.int64)) for s in shards]


@dataclass(frozen=True)
class ParallelRouting:
    """The gathered result: daily ``(days, reaches)`` discharge in the domain's reach order and
    the lakes' end elevation in the order of ``domain.lakes`` (None: no lakes routed)."""

    daily: np.ndarray
    lake_elevation: np.ndarray | None


@dataclass
class RoutingJob:
    """Route a domain's basins over ranks (sent to the ranks by pickling)."""

    checkpoint: LoadedCheckpoint
    inputs: ModelInputs
    domain: simulation.RoutingProblem
    start: int
    stop: int
    chunk_days: int
    device: str = "cpu"
    threads_per_rank: int = 1

    def run(self, ranks: RankContext) -> ParallelRouting | None:
        """Route this rank's basins; rank 0 returns the whole domain's result."""
        outlets = basin_shards(self.inputs, self.domain, ranks.world_size)[ranks.rank]
        part = None
        if outlets.size:
            ids = self.inputs.reach_ids[outlets]
            sub = simulation.reach_problem(self.inputs, [int(i) for i in ids])
            config = self.checkpoint.config
            routed = simulation.rollout(
                self.inputs,
                sub,
                simulation.TrainedParameters.on_inputs(
                    self.checkpoint.model.eval(),
                    config,
                    self.inputs.attribute_names,
                    self.inputs.forcing_names,
                ),
                simulation.RoutingSettings.from_config(config),
                self.start,
                self.stop,
                chunk_days=self.chunk_days,
                device=self.device,
            )
            lakes = np.zeros(0, np.int64)
            if routed.lake_elevation is not None and sub.lakes is not None:
                lakes = sub.reach_index[sub.lakes.reach_index]
            part = (sub.reach_index, routed.daily, lakes, routed.lake_elevation)
        parts = [p for p in ranks.gather(part) if p is not None]
        if not ranks.is_writer:
            return None
        daily = np.empty((self.stop - self.start, self.domain.n_outputs), dtype=np.float32)
        levels: dict[int, float] = {}
        for reach_index, values, lakes, elevation in parts:
            daily[:, np.searchsorted(self.domain.reach_index, reach_index)] = values
            if elevation is not None:  # None: this rank's basins route no lake
                levels.update(zip(lakes.tolist(), np.asarray(elevation).tolist(), strict=True))
        return ParallelRouting(daily, self._domain_lake_levels(levels))

    def _domain_lake_levels(self, levels: dict[int, float]) -> np.ndarray | None:
        """The gathered end elevations in the order of the domain's lakes (None: no lakes)."""
        lakes = self.domain.lakes
        if not levels or lakes is None:
            return None
        return np.array([levels[int(r)] for r in self.domain.reach_index[lakes.reach_index]])


def route_basins_parallel(job: RoutingJob, nproc: int, master_port: int | None = None):
    """:class:`ParallelRouting` of ``job.domain`` routed on ``nproc`` local ranks."""
    if job.domain.outputs is not None:
        raise ValueError("parallel routing outputs every reach of a reach domain, not gauges")
    device = torch.device(job.device).type
    return launch(job, LaunchSettings(nproc_per_node=nproc, master_port=master_port, device=device))
