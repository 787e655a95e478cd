"""Thread policy and memory plan of the training step."""

from __future__ import annotations

import pytest
import torch
from training_synthetic import full_training_params, with_changes

import ddr_pipeline.training.trainer as trainer_module
from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.models import build_models
from ddr_pipeline.training.resources import (
    GIB,
    MIN_LSTM_CHUNK,
    ActivationCost,
    BatchSize,
    MemoryBudgetError,
    StepPlan,
    activation_cost,
    best_checkpoint_interval,
    plan_step,
)

CONTINENTAL = BatchSize(
    gauges=64, reaches=50_000, days=365, steps_per_day=24, forcings=3, attributes=10,
    daily_parameters=2,
)  # fmt: skip
COST = ActivationCost(kan_per_reach=20_000.0, lstm_per_reach_day=2_500.0)


def test_plan_prefers_no_recomputation_then_checkpointing_then_chunks() -> None:
    full = plan_step(CONTINENTAL, COST, None)
    assert (full.checkpoint_every, full.lstm_chunk) == (1, None)
    assert plan_step(CONTINENTAL, COST, 2 * full.estimate_bytes / GIB) == full
    k = best_checkpoint_interval(365 * 24)
    assert k == 93
    no_lstm_room = full.estimate_bytes - full.parts["routing"] + full.parts["routing"] // 10
    lean = plan_step(CONTINENTAL, COST, no_lstm_room / GIB)
    assert (lean.checkpoint_every, lean.lstm_chunk) == (k, None)
    assert lean.parts["routing"] < full.parts["routing"] / 10
    chunked = plan_step(CONTINENTAL, COST, 16)  # large chunks fit beside every routing state
    assert chunked.checkpoint_every == 1
    assert chunked.lstm_chunk is not None and MIN_LSTM_CHUNK <= chunked.lstm_chunk < 50_000
    assert chunked.estimate_bytes <= 16 * GIB
    lstm_per_reach = chunked.parts["LSTM"] / chunked.lstm_chunk
    tight = (chunked.estimate_bytes - chunked.parts["LSTM"] + 500 * lstm_per_reach) / GIB
    both = plan_step(CONTINENTAL, COST, tight)  # 500-reach chunks: checkpoint the routing too
    assert both.checkpoint_every == k
    assert both.lstm_chunk is not None and both.lstm_chunk > 1000
    assert both.estimate_bytes <= tight * GIB


def test_plan_names_the_batch_and_estimate_when_nothing_fits() -> None:
    with pytest.raises(MemoryBudgetError, match=r"64 gauges, 50,000 reaches, 365 days.*GiB"):
        plan_step(CONTINENTAL, COST, 1.0)


def test_activation_cost_is_measured_without_touching_the_rng() -> None:
    model = build_models(load_training_config(full_training_params()))
    state = torch.get_rng_state()
    cost = activation_cost(model)
    assert torch.equal(state, torch.get_rng_state())
    assert cost.kan_per_reach > 0 and cost.lstm_per_reach_day > 0


def _trained(make_trainer, params, plan: StepPlan | None = None):
    trainer = make_trainer(params)
    if plan is not None:
        trainer.memory_plan = lambda batch: plan
    trainer.fit()
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_recomputation_plan_trains_the_same_model(make_trainer) -> None:
    params = full_training_params()
    params["cuda_lstm"]["dropout"] = 0.0  # chunked dropout masks come from another stream
    params = with_changes(params, epochs=1, validation_every=None)
    plain = _trained(make_trainer, params)
    lean = _trained(make_trainer, params, StepPlan(checkpoint_every=7, lstm_chunk=3))
    for key, value in plain.items():
        torch.testing.assert_close(lean[key], value, rtol=1e-5, atol=1e-7, msg=key)


def test_budget_error_stops_before_the_step(make_trainer, monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("simulate ran")

    monkeypatch.setattr(trainer_module, "simulate", fail)
    trainer = make_trainer(with_changes(full_training_params(), memory_budget_gb=0.01))
    with pytest.raises(MemoryBudgetError, match=r"6 gauges, .* reaches, 20 days"):
        trainer.fit()


def test_threads_policy_sets_torch_threads(make_trainer) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        make_trainer(with_changes(full_training_params(), threads=1))
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        make_trainer(with_changes(full_training_params(), threads=None))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_grouped_lstm_is_planned_per_sequence() -> None:
    """``cuda_lstm.sequence_groups``: the probe still measures one sequence, and the plan counts
    the G sequences the LSTM runs instead of one per reach."""
    params = full_training_params()
    plain = activation_cost(build_models(load_training_config(params)))
    params["cuda_lstm"]["sequence_groups"] = 4
    grouped_model = build_models(load_training_config(params))
    assert grouped_model.lstm.sequences(50_000) == 4 and grouped_model.lstm.sequences(3) == 3
    grouped = activation_cost(grouped_model)
    assert grouped.lstm_per_reach_day == plain.lstm_per_reach_day > 0
    assert grouped_model.lstm.sequence_groups == 4  # restored after the probe
    per_reach = plan_step(CONTINENTAL, COST, None)
    size = BatchSize(**{**CONTINENTAL.__dict__, "lstm_sequences": 32})
    few = plan_step(size, COST, None)
    assert few.parts["LSTM"] * 50_000 == pytest.approx(per_reach.parts["LSTM"] * 32, rel=1e-6)
    lean = plan_step(size, COST, few.estimate_bytes / GIB)  # fits without any chunking
    assert (lean.checkpoint_every, lean.lstm_chunk) == (1, None)
