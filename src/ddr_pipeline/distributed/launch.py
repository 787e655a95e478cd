"""Launching ranks with torch's elastic launcher (the engine behind ``torchrun``).

:func:`launch` starts ``nproc_per_node`` processes on this (head) node with a static rendezvous
at ``master_addr:master_port``; with ``nnodes > 1`` it waits for the other nodes, which join
with ``torchrun --nnodes N --node-rank K --master-addr ... --master-port ... -m
ddr_pipeline.distributed`` (docs/distributed.md). Every rank runs :func:`run_rank`: it opens the
process group from the standard environment, receives the :class:`Job` from rank 0 (the other
nodes start without it), runs it and returns rank 0's result to :func:`launch`. A rank that dies
(exception, signal, lost node) stops the whole job: the launcher terminates the other ranks and
:func:`launch` raises :class:`DistributedRunError` naming the rank and its error.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, record
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from ddr_pipeline.distributed.context import RankContext, process_group

logger = logging.getLogger(__name__)

#: Rendezvous id shared by the head node and ``torchrun`` on the other nodes (torchrun's default).
RDZV_ID = "none"
#: Environment variable of the routing kernels' thread count (ddr_pipeline.routing._threads).
ROUTING_THREADS_ENV = "DDR_ROUTING_THREADS"


class DistributedRunError(RuntimeError):
    """A rank of a data-parallel job failed; the job was stopped."""


class Job(Protocol):
    """Work that every rank runs; rank 0's return value is the job's result."""

    threads_per_rank: int

    def run(self, ranks: RankContext) -> Any:
        """Run this rank's part."""
        ...


@dataclass(frozen=True)
class LaunchSettings:
    """Where the ranks run (``DistributedConfig`` of the training parameters)."""

    nproc_per_node: int = 1
    nnodes: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int | None = None
    backend: str = "auto"
    device: str = "cpu"
    timeout_s: int = 600

    @property
    def world_size(self) -> int:
        """Total number of ranks."""
        return self.nnodes * self.nproc_per_node


def free_port() -> int:
    """A TCP port that is free on this machine right now (local rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def limit_threads(threads: int) -> None:
    """torch intra-op threads and the routing kernels' threads of this rank."""
    torch.set_num_threads(threads)
    os.environ[ROUTING_THREADS_ENV] = str(threads)


@record
def run_rank(job_bytes: bytes | None, backend: str, device: str, timeout_s: int) -> Any:
    """The entry point of every rank: join, receive the job from rank 0, run it.

    The job and the result travel pickled as bytes: handing tensors to or from the spawned
    processes directly would share them through file descriptors, which fails for tensors that
    share one storage.
    """
    with process_group(backend, torch.device(device), timeout_s) as ranks:  # type: ignore[arg-type]
        local = pickle.loads(job_bytes) if job_bytes is not None and ranks.is_writer else None
        job = ranks.broadcast(local)
        if job is None:
            raise DistributedRunError("rank 0 sent no job")
        limit_threads(job.threads_per_rank)
        result = job.run(ranks)
        ranks.barrier()
        return pickle.dumps(result) if ranks.is_writer else None


def launch(job: Job, settings: LaunchSettings) -> Any:
    """Run ``job`` on ``settings.world_size`` ranks; return rank 0's result.

    Raises :class:`DistributedRunError` naming the failed rank(s), their exit code and error.
    """
    port = settings.master_port or free_port()
    config = LaunchConfig(
        min_nodes=settings.nnodes,
        max_nodes=settings.nnodes,
        nproc_per_node=settings.nproc_per_node,
        run_id=RDZV_ID,
        rdzv_backend="static",
        rdzv_endpoint=f"{settings.master_addr}:{port}",
        rdzv_configs={"rank": 0, "timeout": settings.timeout_s},
        max_restarts=0,
        monitor_interval=0.5,
        start_method="spawn",
        log_line_prefix_template="[rank${rank}] ",
    )
    logger.info(
        "launching %d ranks (%d per node on %d nodes), rendezvous %s:%d",
        settings.world_size,
        settings.nproc_per_node,
        settings.nnodes,
        settings.master_addr,
        port,
    )
    try:
        results = elastic_launch(config, run_rank)(
            pickle.dumps(job), settings.backend, settings.device, settings.timeout_s
        )
    except ChildFailedError as error:
        raise DistributedRunError(describe_failure(error)) from None
    return pickle.loads(results[0])


def describe_failure(error: ChildFailedError) -> str:
    """One line per failed rank: rank, exit code and its error message (first failure first)."""
    rank, first = error.get_first_failure()
    lines = [f"rank {rank} failed first (exit code {first.exitcode}): {_message(first)}"]
    for other, failure in sorted(error.failures.items()):
        if other != rank:
            lines.append(f"rank {other} (exit code {failure.exitcode}): {_message(failure)}")
    return "data-parallel job stopped; " + "\n".join(lines)


def _message(failure: Any) -> str:
    data = failure.error_file_data or {}
    message = data.get("message", {})
    if isinstance(message, dict):
        return str(message.get("message", "")).strip() or failure.signal_name()
    return str(message).strip() or failure.signal_name()
