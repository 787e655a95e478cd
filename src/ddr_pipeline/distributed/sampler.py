"""The distributed sampler: every rank's shard of each global mini-batch of the batch plan.

The batch plan fixes the global mini-batches (the single-process order for the seed); this
sampler only splits each of them over the ranks, so the union of the shards is the global batch
and the global order does not depend on the number of ranks. A rank routes the union of its
gauges' upstream networks, so the split balances routed reaches: gauges are taken largest
upstream network first and each goes to the rank whose routed network is smallest once the gauge
is added (ties: the lower rank); the step time is that of the slowest rank. The assignment depends only on the global batch and the world size, so every rank
computes the same split without communicating. Within a shard gauges keep their plan order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ddr_pipeline.data.containers import GaugeSet
from ddr_pipeline.network import RiverNetwork


class ShardedBatchSampler:
    """Splits global mini-batches (gauge positions) of ``gauges`` over ``world_size`` ranks."""

    def __init__(self, gauges: GaugeSet, network: RiverNetwork, world_size: int) -> None:
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        self.gauges = gauges
        self.network = network
        self.world_size = world_size
        self._closures: dict[int, np.ndarray] = {}

    def closure(self, position: int) -> np.ndarray:
        """Global indices of the reaches upstream of gauge ``position`` (cached)."""
        if position not in self._closures:
            outlets = np.asarray(self.gauges.reach_index[position], dtype=np.int64)
            self._closures[position] = np.asarray(self.network.upstream_closure(outlets))
        return self._closures[position]

    def shards(self, positions: Sequence[int]) -> list[list[int]]:
        """Gauge positions of every rank (some may be empty when the batch is small)."""
        if self.world_size == 1:
            return [list(positions)]
        order = sorted(range(len(positions)), key=lambda i: (-self.closure(positions[i]).size, i))
        routed = [np.empty(0, dtype=np.int64) for _ in range(self.world_size)]
        members: list[list[int]] = [[] for _ in range(self.world_size)]
        for i in order:
            reaches = self.closure(positions[i])
            grown = [np.union1d(routed[r], reaches) for r in range(self.world_size)]
            rank = min(range(self.world_size), key=lambda r: (grown[r].size, r))
            routed[rank] = grown[rank]
            members[rank].append(i)
        return [[int(positions[i]) for i in sorted(m)] for m in members]

    def shard(self, positions: Sequence[int], rank: int) -> list[int]:
        """Gauge positions of ``rank``."""
        return self.shards(positions)[rank]
