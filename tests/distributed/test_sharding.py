"""The batch plan, the distributed sampler, loss terms and the one-writer rule (no processes)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_synthetic import TRAIN_PERIOD, full_training_params, make_twin  # noqa: E402

from ddr_pipeline.config.training import load_training_config  # noqa: E402
from ddr_pipeline.data.batch_plan import (  # noqa: E402
    BatchPlan,
    BatchPlanError,
    plan_batches,
    plan_experiment,
)
from ddr_pipeline.data.containers import GaugeSet, ModelInputs  # noqa: E402
from ddr_pipeline.distributed import RankContext, ShardedBatchSampler  # noqa: E402
from ddr_pipeline.models import build_models  # noqa: E402
from ddr_pipeline.training import RecordingMonitor, Trainer  # noqa: E402
from ddr_pipeline.training.losses import routing_loss, routing_loss_terms  # noqa: E402


@pytest.fixture(scope="module")
def twin():
    ds, gauges, stats = make_twin()
    inputs = ModelInputs.from_dataset(ds)
    return inputs, GaugeSet.from_table(gauges, inputs, "train"), stats


def _plan(twin, seed: int = 3, epochs: int = 3) -> pd.DataFrame:
    inputs, train, _ = twin
    return plan_batches(
        train,
        inputs.network,
        inputs.dates,
        inputs.day_range(*TRAIN_PERIOD),
        epochs=epochs,
        batch_size=6,
        rho=20,
        shuffle=True,
        seed=seed,
    )


def test_batch_plan_is_deterministic_and_prefix_stable(twin):
    plan = _plan(twin)
    pd.testing.assert_frame_equal(plan, _plan(twin))
    assert not plan["gauges"].equals(_plan(twin, seed=4)["gauges"])
    pd.testing.assert_frame_equal(plan[plan["epoch"] <= 2], _plan(twin, epochs=2))
    inputs, train, _ = twin
    assert plan["n_gauges"].sum() == 3 * len(train)
    for _, rows in plan.groupby("epoch"):  # every training gauge once per epoch
        assert sorted(",".join(rows["gauges"]).split(",")) == sorted(train.staids)
    start = pd.to_datetime(plan["window_start"])
    assert ((pd.to_datetime(plan["window_end"]) - start).dt.days == 19).all()


def test_batch_plan_rejects_unknown_gauges_and_missing_epochs(twin):
    inputs, train, _ = twin
    plan = _plan(twin)
    resolved = BatchPlan(plan, train, inputs.dates)
    assert resolved.epochs == 3 and resolved.n_batches(1) == 3
    with pytest.raises(BatchPlanError, match="not epoch 4"):
        resolved.epoch(4)
    bad = plan.copy()
    bad.loc[2, "gauges"] = "00000999," + bad.loc[2, "gauges"]
    with pytest.raises(BatchPlanError, match=r"mini-batch 2: gauges \['00000999'\]"):
        BatchPlan(bad, train, inputs.dates)
    late = plan.copy()
    late.loc[0, "window_start"] = "2031-01-01"
    with pytest.raises(BatchPlanError, match="2031-01-01"):
        BatchPlan(late, train, inputs.dates)


@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shards_partition_the_global_batch_in_plan_order(twin, world_size):
    inputs, train, _ = twin
    sampler = ShardedBatchSampler(train, inputs.network, world_size)
    for planned in BatchPlan(_plan(twin), train, inputs.dates).epoch(1):
        shards = sampler.shards(planned.positions)
        assert len(shards) == world_size
        assert sorted(p for s in shards for p in s) == sorted(planned.positions)
        order = {p: i for i, p in enumerate(planned.positions)}
        assert all([order[p] for p in s] == sorted(order[p] for p in s) for s in shards)
        assert shards == ShardedBatchSampler(train, inputs.network, world_size).shards(
            planned.positions
        )


def test_shards_balance_routed_reaches(twin):
    inputs, train, _ = twin
    sampler = ShardedBatchSampler(train, inputs.network, 2)
    positions = list(range(len(train)))
    routed = [
        np.unique(np.concatenate([sampler.closure(p) for p in shard])).size
        for shard in sampler.shards(positions)
    ]
    whole = np.unique(np.concatenate([sampler.closure(p) for p in positions])).size
    assert max(routed) < whole  # both ranks work, neither routes everything
    assert max(routed) <= 0.75 * sum(routed)


@pytest.mark.parametrize("name", ["mse", "mae", "nse"])
def test_loss_terms_of_disjoint_gauge_sets_add_up(name):
    generator = torch.Generator().manual_seed(0)
    prediction = torch.rand(30, 7, generator=generator, dtype=torch.float64) * 10
    observation = torch.rand(30, 7, generator=generator, dtype=torch.float64) * 10
    observation[5:9, 2] = torch.nan
    observation[:, 6] = torch.nan
    observation[3:, 4] = torch.nan
    parts = [
        routing_loss_terms(prediction[:, s], observation[:, s], name, warmup=2)
        for s in (slice(0, 3), slice(3, 7))
    ]
    pooled = sum(p[0] for p in parts) / sum(p[1] for p in parts)
    whole = routing_loss(prediction, observation, name, warmup=2)
    assert float(pooled) == pytest.approx(float(whole), rel=1e-12)


class _OtherRankAlone(RankContext):
    """Rank 1 of 2 whose collectives see only itself (no process group needed)."""

    def sum(self, values):
        return [float(v) for v in values]

    def gather(self, value):
        return [value] * self.world_size

    def broadcast(self, value):
        return value

    def sum_gradients(self, parameters):
        return None

    def broadcast_parameters(self, module):
        return None


def test_only_rank_zero_writes_checkpoints_and_reports(twin, tmp_path):
    """Rank 1 trains its shards but writes no checkpoint and reports nothing."""
    inputs, train, stats = twin
    params = full_training_params()
    params["experiment"].update(epochs=1, validation_every=None)
    config = load_training_config(params)
    monitors = {rank: RecordingMonitor() for rank in (0, 1)}
    results = {}
    for rank in (0, 1):
        trainer = Trainer(
            config,
            build_models(config),
            inputs,
            train,
            period=inputs.day_range(*TRAIN_PERIOD),
            normalization_stats=stats,
            models_dir=tmp_path / f"rank{rank}",
            monitor=monitors[rank],
            progress=False,
            ranks=_OtherRankAlone(rank=1, world_size=2) if rank else None,
        )
        results[rank] = trainer.fit()
    assert not (tmp_path / "rank1").exists() and not monitors[1].metrics
    written = sorted(p.name for p in (tmp_path / "rank0").rglob("*.pt"))
    assert written == [f"ddr_full_epoch_1_mb_{i}.pt" for i in range(3)]
    assert monitors[0].series("loss") == results[0].history["loss"].tolist()
    assert (
        len(plan_experiment(train, inputs, inputs.day_range(*TRAIN_PERIOD), config.experiment)) == 3
    )
