"""Machine resources of a training step: the CPU thread policy and the memory plan.

Threads: ``experiment.threads`` sets torch's intra-op thread count; the routing kernels follow
torch's count (``DDR_ROUTING_THREADS`` overrides, ``NUMBA_NUM_THREADS`` caps) and never change it.

Memory: :func:`plan_step` estimates the peak memory of one mini-batch from its size (reaches,
days, gauges) and the activation bytes of the model's own networks, measured once on a small
probe (:func:`activation_cost`), and picks the routing checkpoint interval and the LSTM chunk
size that fit ``experiment.memory_budget_gb``. When even the leanest plan does not fit it raises
:class:`MemoryBudgetError` before anything is allocated. The constants below were calibrated
against measured peak RSS (docs/performance.md, ``benchmarks/training_step.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ddr_pipeline.models import RoutingModel

GIB = 2**30
#: Resident memory of the interpreter, torch, numba, pandas and the model inputs' bookkeeping.
RUNTIME_BYTES = int(0.7 * GIB)
#: Per daily parameter and reach-day: the denormalised value, its contiguous copy for the
#: routing, the saved autograd intermediates and the gradient (float32).
ASSEMBLY_BYTES_PER_PARAM_DAY = 24
#: Headroom on the measured activation bytes (gradient buffers live during the backward).
ACTIVATION_HEADROOM = 1.3
#: Smallest LSTM chunk (reaches) worth keeping every routing state for: below it the chunks'
#: small matrix products cost more than the routing's recomputation saves.
MIN_LSTM_CHUNK = 1024
#: Probe sizes: reaches (two, the difference removes the weights) and days.
_PROBE_REACHES = (16, 48)
_PROBE_DAYS = 8


class MemoryBudgetError(RuntimeError):
    """A mini-batch cannot be trained within ``experiment.memory_budget_gb``."""


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count (``None`` leaves it alone); the routing follows it."""
    if threads is not None:
        torch.set_num_threads(int(threads))


@dataclass(frozen=True)
class ActivationCost:
    """Autograd-saved bytes of the model's networks: KAN per reach, LSTM per sequence-day
    (one sequence per reach unless ``cuda_lstm.sequence_groups`` groups them)."""

    kan_per_reach: float
    lstm_per_reach_day: float


def _saved_bytes(run) -> int:
    """Bytes of the distinct storages autograd saves while ``run()`` executes."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(storages.values())


def activation_cost(model: RoutingModel) -> ActivationCost:
    """Measure the saved activations of ``model`` on random probes (global RNGs untouched)."""
    param = next(model.parameters())
    dtype, device = param.dtype, param.device

    def kan(n: int) -> int:
        x = torch.zeros(n, model.kan._spec["n_inputs"], dtype=dtype, device=device)
        return _saved_bytes(lambda: model.kan(x))

    def lstm(n: int) -> int:
        f = torch.zeros(_PROBE_DAYS, n, model.lstm.n_forcings, dtype=dtype, device=device)
        a = torch.zeros(n, model.lstm.n_attributes, dtype=dtype, device=device)
        with model.lstm.per_reach():  # the cost of one sequence, also when reaches are grouped
            return _saved_bytes(lambda: model.lstm(f, a))

    lo, hi = _PROBE_REACHES
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        kan_cost = (kan(hi) - kan(lo)) / (hi - lo)
        lstm_cost = 0.0
        if model.lstm is not None:
            lstm_cost = (lstm(hi) - lstm(lo)) / ((hi - lo) * _PROBE_DAYS)
    return ActivationCost(kan_per_reach=max(kan_cost, 0.0), lstm_per_reach_day=max(lstm_cost, 0.0))


@dataclass(frozen=True)
class BatchSize:
    """What the memory of a mini-batch depends on."""

    gauges: int
    reaches: int
    days: int
    steps_per_day: int
    forcings: int
    attributes: int
    daily_parameters: int
    dtype_bytes: int = 4
    lstm_sequences: int | None = None
    """Sequences the LSTM runs (``None``: one per reach; fewer with ``sequence_groups``)."""

    def describe(self) -> str:
        return f"{self.gauges} gauges, {self.reaches:,} reaches, {self.days} days"


@dataclass(frozen=True)
class StepPlan:
    """How one step runs: routing checkpoint interval, LSTM chunk, estimated peak bytes."""

    checkpoint_every: int = 1
    lstm_chunk: int | None = None
    estimate_bytes: int = 0
    parts: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in self.parts.items())
        return f"{self.estimate_bytes / GIB:.2f} GiB ({parts} GiB)"


def routing_bytes(size: BatchSize, checkpoint_every: int) -> int:
    """Memory of the routing of a batch (daily inputs, means at the observed reaches): stored
    states (every ``checkpoint_every``-th plus the recomputed segment), daily Q′ and O(N) work
    buffers; the daily parameters and their gradients are counted by the parameter assembly."""
    n, b = size.reaches, size.dtype_bytes
    steps = size.days * size.steps_per_day
    stored = ((steps - 1) // checkpoint_every + 2) * n * b
    segment = checkpoint_every * n * b if checkpoint_every > 1 else 0
    work = n * 8 * 60  # float64 constants, coefficients, intermediates, accumulators
    return stored + segment + size.days * n * b + work


def best_checkpoint_interval(steps: int) -> int:
    """k minimising the stored states T/k + k (≈ √T)."""
    return max(1, math.isqrt(max(steps, 1)))


def plan_step(size: BatchSize, cost: ActivationCost, budget_gb: float | None) -> StepPlan:
    """The fastest plan whose estimate fits ``budget_gb`` (``None``: no limit, no recomputation):
    first no recomputation, then routing checkpointing (≈ +1 routing forward); when the LSTM
    must be chunked (≈ +1 LSTM forward), chunks as large as fit beside every routing state
    (if at least :data:`MIN_LSTM_CHUNK` reaches), else beside the checkpointed routing. Raises
    :class:`MemoryBudgetError` naming the batch and the leanest estimate when nothing fits."""
    n, d, b = size.reaches, size.days, size.dtype_bytes
    base = {
        "runtime": RUNTIME_BYTES,
        "inputs": n * d * (size.forcings + 1) * b + 3 * n * size.attributes * b,
        "KAN": int(ACTIVATION_HEADROOM * cost.kan_per_reach * n),
        "assembly": ASSEMBLY_BYTES_PER_PARAM_DAY * size.daily_parameters * n * d,
    }
    lstm_per_reach = ACTIVATION_HEADROOM * cost.lstm_per_reach_day * d  # per sequence
    sequences = n if size.lstm_sequences is None else min(size.lstm_sequences, n)

    def plan(every: int, chunk: int | None) -> StepPlan:
        chunked = sequences if chunk is None else min(chunk, sequences)
        parts = {
            **base,
            "routing": routing_bytes(size, every),
            "LSTM": int(lstm_per_reach * chunked),
        }
        return StepPlan(every, chunk, sum(parts.values()), parts)

    full = plan(1, None)
    if budget_gb is None:
        return full
    budget = budget_gb * GIB
    if full.estimate_bytes <= budget:
        return full
    every = best_checkpoint_interval(d * size.steps_per_day)
    lean = plan(every, None)
    if lean.estimate_bytes <= budget:
        return lean
    if lstm_per_reach > 0:  # the LSTM is chunked: is the routing's recomputation needed too?
        for interval, smallest in ((1, MIN_LSTM_CHUNK), (every, 1)):
            others = plan(interval, 1)
            room = budget - (others.estimate_bytes - others.parts["LSTM"])
            chunk = int(room // lstm_per_reach)
            if chunk >= smallest:
                return plan(interval, chunk)
    leanest = plan(every, 1 if lstm_per_reach else None)
    raise MemoryBudgetError(
        f"a mini-batch of {size.describe()} needs an estimated {leanest.describe()} at its "
        f"leanest (routing checkpointed every {every} steps, LSTM one reach at a time) and "
        f"{full.estimate_bytes / GIB:.1f} GiB without recomputation, more than "
        f"experiment.memory_budget_gb = {budget_gb:g}; lower experiment.batch_size or "
        "experiment.rho, or raise the budget"
    )
