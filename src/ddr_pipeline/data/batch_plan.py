"""The batch plan: every training mini-batch (gauges, window, sub-network size) decided up front.

:func:`plan_batches` draws the whole plan from the experiment's seed: per epoch a seeded
``RandomSampler`` order of the training gauges (``torch.Generator(seed)``, through a
``DataLoader`` exactly as a lazy loader would draw it) cut into mini-batches of ``batch_size``,
and per mini-batch a ``rho``-day window start drawn from ``torch.Generator(seed + 1)``. The plan
is a table (one row per mini-batch, :data:`PLAN_COLUMNS`) that the training pipeline writes to
the catalog and MLflow; the trainer reads it back through :class:`BatchPlan`. The plan does not
depend on the number of ranks: data-parallel ranks train shards of the same global mini-batches
(:mod:`ddr_pipeline.distributed.sampler`). Epoch ``e``'s rows do not depend on the number of
epochs, so a run resumed with more epochs continues the same plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

from ddr_pipeline.config.training import ExperimentConfig
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.network import RiverNetwork

#: Seed offset of the window generator (the gauge order uses the seed itself).
WINDOW_SEED_OFFSET = 1
#: One row per mini-batch; ``gauges`` are comma-joined STAIDs, windows are inclusive dates.
PLAN_COLUMNS = (
    "epoch",
    "mini_batch",
    "step",
    "gauges",
    "n_gauges",
    "window_start",
    "window_end",
    "n_reaches",
)
GAUGE_SEPARATOR = ","


class GaugeDataset(Dataset[int]):
    """Map-style dataset over the gauges of a :class:`GaugeSet`; an item is a gauge position."""

    def __init__(self, gauges: GaugeSet) -> None:
        self.gauges = gauges

    def __len__(self) -> int:
        return len(self.gauges)

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < len(self.gauges):
            raise IndexError(f"gauge position {index} outside 0..{len(self.gauges) - 1}")
        return int(index)


class BatchPlanError(ValueError):
    """A batch plan that does not fit the training gauges, dates or configuration."""


def _gauge_orders(gauges: GaugeSet, batch_size: int, shuffle: bool, seed: int, epochs: int):
    """Per epoch, the mini-batches of gauge positions in the seeded sampler's order."""
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    dataset = GaugeDataset(gauges)
    sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=list,
        num_workers=0,
        generator=generator,
    )
    for _ in range(epochs):
        yield [[int(p) for p in batch] for batch in loader]


def plan_batches(
    gauges: GaugeSet,
    network: RiverNetwork,
    dates: pd.DatetimeIndex,
    period: tuple[int, int],
    *,
    epochs: int,
    batch_size: int,
    rho: int | None,
    shuffle: bool,
    seed: int,
) -> pd.DataFrame:
    """The batch plan table of ``epochs`` epochs over ``gauges`` in day positions ``period``.

    ``rho=None`` (or longer than the period) uses the whole period as every window.
    """
    first, stop = period
    if not 0 <= first < stop <= len(dates):
        raise BatchPlanError(f"training period {first}..{stop} outside 0..{len(dates)}")
    length = stop - first if rho is None else min(int(rho), stop - first)
    windows = torch.Generator()
    windows.manual_seed(int(seed) + WINDOW_SEED_OFFSET)
    rows = []
    for epoch, batches in enumerate(
        _gauge_orders(gauges, batch_size, shuffle, seed, epochs), start=1
    ):
        for mini_batch, positions in enumerate(batches):
            offset = int(torch.randint(stop - first - length + 1, (1,), generator=windows).item())
            start = first + offset
            outlets = np.unique(np.concatenate([gauges.reach_index[p] for p in positions]))
            rows.append(
                {
                    "epoch": epoch,
                    "mini_batch": mini_batch,
                    "step": len(rows),
                    "gauges": GAUGE_SEPARATOR.join(gauges.staids[p] for p in positions),
                    "n_gauges": len(positions),
                    "window_start": str(dates[start].date()),
                    "window_end": str(dates[start + length - 1].date()),
                    "n_reaches": int(network.upstream_closure(outlets).size),
                }
            )
    return pd.DataFrame(rows, columns=list(PLAN_COLUMNS)).astype(
        {"gauges": "string", "window_start": "string", "window_end": "string"}
    )


def plan_experiment(
    gauges: GaugeSet, inputs: ModelInputs, period: tuple[int, int], experiment: ExperimentConfig
) -> pd.DataFrame:
    """The batch plan of an experiment's epochs, batch size, window length, shuffle and seed."""
    return plan_batches(
        gauges,
        inputs.network,
        inputs.dates,
        period,
        epochs=experiment.epochs,
        batch_size=experiment.batch_size,
        rho=experiment.rho,
        shuffle=experiment.shuffle,
        seed=experiment.seed,
    )


@dataclass(frozen=True)
class PlannedBatch:
    """One global mini-batch of the plan: gauge positions and ``[start, stop)`` day positions."""

    epoch: int
    mini_batch: int
    positions: tuple[int, ...]
    start: int
    stop: int
    staids: tuple[str, ...]


class BatchPlan:
    """A validated batch plan table, resolved against the training gauges and the input dates."""

    def __init__(self, table: pd.DataFrame, gauges: GaugeSet, dates: pd.DatetimeIndex) -> None:
        missing = [c for c in PLAN_COLUMNS if c not in table.columns]
        if missing:
            raise BatchPlanError(f"batch plan lacks columns {missing}")
        self.table = table.reset_index(drop=True)
        position = {s: i for i, s in enumerate(gauges.staids)}
        self._batches: dict[int, list[PlannedBatch]] = {}
        for row in self.table.itertuples(index=False):
            staids = tuple(str(row.gauges).split(GAUGE_SEPARATOR))
            unknown = [s for s in staids if s not in position]
            if unknown:
                raise BatchPlanError(
                    f"batch plan epoch {row.epoch} mini-batch {row.mini_batch}: gauges "
                    f"{unknown[:10]} are not training gauges"
                )
            start, stop = _day_range(dates, row)
            epoch_batches = self._batches.setdefault(int(row.epoch), [])
            if int(row.mini_batch) != len(epoch_batches):
                raise BatchPlanError(
                    f"batch plan epoch {row.epoch}: mini-batch {row.mini_batch} out of order "
                    f"(expected {len(epoch_batches)})"
                )
            epoch_batches.append(
                PlannedBatch(
                    int(row.epoch),
                    int(row.mini_batch),
                    tuple(position[s] for s in staids),
                    start,
                    stop,
                    staids,
                )
            )
        if sorted(self._batches) != list(range(1, len(self._batches) + 1)):
            raise BatchPlanError(f"batch plan epochs {sorted(self._batches)} are not 1..n")

    @property
    def epochs(self) -> int:
        """Number of planned epochs."""
        return len(self._batches)

    def n_batches(self, epoch: int) -> int:
        """Mini-batches of ``epoch`` (1-based)."""
        return len(self.epoch(epoch))

    def epoch(self, epoch: int) -> Sequence[PlannedBatch]:
        """The planned mini-batches of ``epoch``; :class:`BatchPlanError` when not planned."""
        if epoch not in self._batches:
            raise BatchPlanError(
                f"the batch plan covers epochs 1..{self.epochs}, not epoch {epoch} "
                "(re-run the plan_batches node with the current experiment.epochs)"
            )
        return self._batches[epoch]


def _day_range(dates: pd.DatetimeIndex, row) -> tuple[int, int]:
    start = dates.searchsorted(pd.Timestamp(row.window_start))
    stop = dates.searchsorted(pd.Timestamp(row.window_end), side="right")
    if start >= len(dates) or dates[start] != pd.Timestamp(row.window_start) or stop <= start:
        raise BatchPlanError(
            f"batch plan epoch {row.epoch} mini-batch {row.mini_batch}: window "
            f"{row.window_start}..{row.window_end} is not inside the model input dates "
            f"{dates[0].date()}..{dates[-1].date()}"
        )
    return int(start), int(stop)
