"""Batching: gauges -> one routing problem; seeded sampling; clear input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from training_synthetic import TRAIN_PERIOD, full_training_params, make_twin

from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data.batch_plan import BatchPlan, plan_batches
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.simulation import RoutingSettings
from ddr_pipeline.simulation.batches import build_batch


def test_batch_is_the_union_of_upstream_networks(twin):
    inputs, table, _, _ = twin
    gauges = GaugeSet.from_table(table, inputs, None)
    # reach 102 (drains 104, 105, 108..111) and 203 (drains 206, 207); 104 is inside 102's basin
    positions = [gauges.staids.index(f"{i:08d}") for i in (102, 104, 203)]
    batch = build_batch(inputs, gauges, positions, 10, 30)
    ids = set(inputs.reach_ids[batch.reach_index].tolist())
    assert ids == {102, 104, 105, 108, 109, 110, 111, 203, 206, 207}
    assert batch.network.n_reaches == len(ids)
    assert batch.network.ids.tolist() == inputs.reach_ids[batch.reach_index].tolist()
    local_gauge_ids = [batch.network.ids[idx].tolist() for idx in batch.gauge_index]
    assert local_gauge_ids == [[102], [104], [203]]
    window = batch.window
    daily = torch.from_numpy(inputs.lateral_inflow[10:30][:, batch.reach_index])
    assert torch.equal(window.lateral_inflow, daily)
    assert window.forcings.shape == (20, len(ids), 3)
    assert window.attributes.shape == window.attributes_raw.shape == (len(ids), 3)
    assert set(window.channel) == {"length", "slope", "x"}
    columns = gauges.obs_column[positions]
    assert np.array_equal(batch.observations.numpy(), inputs.observations[10:30][:, columns])
    assert batch.dates[0] == inputs.dates[10] and batch.n_days == 20


def _plan(inputs, gauges, rho, seed=0, batch_size=5, shuffle=True, epochs=1):
    return plan_batches(
        gauges,
        inputs.network,
        inputs.dates,
        inputs.day_range(*TRAIN_PERIOD),
        epochs=epochs,
        batch_size=batch_size,
        rho=rho,
        shuffle=shuffle,
        seed=seed,
    )


def test_windows_stay_inside_the_period_and_follow_the_seed(twin):
    inputs, table, _, _ = twin
    gauges = GaugeSet.from_table(table, inputs, "train")
    first, stop = inputs.day_range(*TRAIN_PERIOD)
    plan = BatchPlan(_plan(inputs, gauges, rho=30, batch_size=1, epochs=12), gauges, inputs.dates)
    windows = [(b.start, b.stop) for e in range(1, 13) for b in plan.epoch(e)]
    assert all(first <= a and b <= stop and b - a == 30 for a, b in windows)
    assert len({a for a, _ in windows}) > 30
    again = _plan(inputs, gauges, rho=30, batch_size=1, epochs=12)
    pd.testing.assert_frame_equal(plan.table, again)
    for rho in (None, 10_000):
        whole = BatchPlan(_plan(inputs, gauges, rho=rho), gauges, inputs.dates).epoch(1)[0]
        assert (whole.start, whole.stop) == (first, stop)


def test_gauge_order_is_seeded(twin):
    inputs, table, _, _ = twin
    gauges = GaugeSet.from_table(table, inputs, "train")

    def epoch(seed: int, shuffle: bool = True):
        plan = _plan(inputs, gauges, rho=20, seed=seed, shuffle=shuffle)
        return list(zip(plan["gauges"], plan["window_start"], strict=True))

    assert epoch(1) == epoch(1)
    assert epoch(1) != epoch(2)
    assert [len(s.split(",")) for s, _ in epoch(1)] == [5, 5, 5, 3]
    assert ",".join(s for s, _ in epoch(0, shuffle=False)).split(",") == list(gauges.staids)


def test_input_errors_name_the_problem(twin):
    inputs, table, _, ds = twin
    with pytest.raises(KeyError, match="lack variables"):
        ModelInputs.from_dataset(ds.drop_vars(["forcings", "x"]))
    with pytest.raises(ValueError, match="outside the model inputs"):
        inputs.day_range("1999-01-01", "2000-02-01")
    with pytest.raises(KeyError, match="no 'validation' period"):
        inputs.period("validation")
    bad = pd.concat([table, table.iloc[[0]].assign(STAID="99999999")], ignore_index=True)
    with pytest.raises(KeyError, match="99999999"):
        GaugeSet.from_table(bad, inputs, None)
    with pytest.raises(ValueError, match="split == 'holdout'"):
        GaugeSet.from_table(table, inputs, "holdout")
    unknown_reach = table.iloc[[0]].assign(reach_ids=[[424242]])
    with pytest.raises(KeyError, match="424242"):
        GaugeSet.from_table(unknown_reach, inputs, None)


def test_missing_muskingum_x_takes_the_default():
    ds = make_twin()[0]
    x = ds["x"].values.copy()
    x[:3] = np.nan
    inputs = ModelInputs.from_dataset(ds.assign(x=("reach_id", x)))
    params = full_training_params()
    params["params"]["defaults"] = {"p_spatial": 21.0, "x": 0.2}
    channel = {k: torch.from_numpy(v) for k, v in inputs.channel.items()}
    filled = RoutingSettings.from_config(load_training_config(params)).channel(channel)
    assert torch.equal(filled["x"][:3], torch.full((3,), 0.2))
    assert torch.equal(filled["x"][3:], channel["x"][3:])
