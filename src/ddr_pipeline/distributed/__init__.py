"""Data-parallel training and parallel domain routing with ``torch.distributed``.

* :mod:`~ddr_pipeline.distributed.context` — :class:`RankContext` (rank, world size, the
  collectives: loss terms, gradients, guard status, gathers) and :func:`process_group`.
* :mod:`~ddr_pipeline.distributed.sampler` — :class:`ShardedBatchSampler`, each rank's shard of
  a global mini-batch of the batch plan.

docs/distributed.md describes the commands (local ranks, torchrun across nodes, SLURM).
"""

from ddr_pipeline.distributed.context import RankContext, env_has_process_group, process_group
from ddr_pipeline.distributed.sampler import ShardedBatchSampler

__all__ = ["RankContext", "ShardedBatchSampler", "env_has_process_group", "process_group"]
