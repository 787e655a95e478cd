"""Where a process stands in a data-parallel job, and the few collectives the project needs.

:class:`RankContext` is the process's rank, the world size and its device. Its collectives are
no-ops in a single process (``world_size == 1``), so library code calls them unconditionally and
the one-process run does exactly what it did before. :func:`process_group` opens the
``torch.distributed`` process group from the standard environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``: what ``torchrun`` and the elastic launcher set).

Gradients are reduced as one flat buffer (the KAN and LSTM together are a few thousand values),
with a has-gradient flag per parameter, so a parameter that received no gradient on any rank
keeps ``grad = None`` exactly as in a single process (Adam then skips it).
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

Backend = Literal["auto", "gloo", "nccl"]
ENV_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class RankContext:
    """This process's place in the job; collectives are no-ops when ``world_size == 1``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes checkpoints, reports and MLflow."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        """Whether other ranks take part."""
        return self.world_size > 1

    def device(self, requested: torch.device) -> torch.device:
        """One CUDA device per local rank when training on CUDA; CPU stays CPU."""
        if requested.type == "cuda" and self.parallel:
            return torch.device("cuda", self.local_rank)
        return requested

    # ------------------------------------------------------------------ collectives
    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks of a few float64 scalars (identical on every rank)."""
        if not self.parallel:
            return [float(v) for v in values]
        buffer = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm())
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        return buffer.cpu().tolist()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if not self.parallel:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (picklable) on every rank."""
        if not self.parallel:
            return value
        box = [value if self.is_writer else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Replace every ``p.grad`` by its sum over ranks (``None`` where no rank had one)."""
        if not self.parallel or not parameters:
            return
        device = parameters[0].device
        flags = torch.tensor(
            [p.grad is not None for p in parameters], dtype=torch.float32, device=device
        )
        grads = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
            for p in parameters
        ]
        flat = torch.cat([*grads, flags])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        received = flat[-len(parameters) :] > 0
        offset = 0
        for p, has_grad in zip(parameters, received.tolist(), strict=True):
            size = p.numel()
            p.grad = flat[offset : offset + size].view_as(p).to(p.dtype) if has_grad else None
            offset += size

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (same start on every rank)."""
        if not self.parallel:
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.parallel:
            dist.barrier()


def _comm() -> torch.device:
    """The device collectives run on: CUDA for NCCL, else CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def env_has_process_group() -> bool:
    """Whether the standard ``torch.distributed`` environment variables are set."""
    return all(key in os.environ for key in ENV_KEYS)


def resolve_backend(backend: Backend, device: torch.device) -> str:
    """``auto`` -> NCCL for CUDA ranks, gloo otherwise; NCCL on CPU is an error."""
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ValueError("distributed.backend nccl needs CUDA ranks (experiment.device)")
    return backend


@contextmanager
def process_group(
    backend: Backend = "auto", device: torch.device | None = None, timeout_s: int = 600
) -> Iterator[RankContext]:
    """The :class:`RankContext` of this process; opens and closes the process group.

    Without the standard environment (a plain single process) the context is rank 0 of 1 and
    nothing is opened.
    """
    if not env_has_process_group() or int(os.environ["WORLD_SIZE"]) == 1:
        yield RankContext()
        return
    context = RankContext(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    device = context.device(device or torch.device("cpu"))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        resolve_backend(backend, device),
        init_method="env://",
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    logger.info("rank %d of %d joined (%s)", context.rank, context.world_size, device)
    try:
        yield context
    finally:
        dist.destroy_process_group()
