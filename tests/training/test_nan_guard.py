"""The NaN guard catches blow-ups: exploded weights are undone and never checkpointed."""

from __future__ import annotations

import logging

import pytest
import torch
from training_synthetic import full_training_params, with_changes

from ddr_pipeline.model_store.checkpoints import read_checkpoint
from ddr_pipeline.training import NonFiniteLossError


def _all_finite(state: dict) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())


def test_exploding_learning_rate_is_undone_and_never_checkpointed(make_trainer, tmp_path):
    """lr = 1e30: every step explodes the weights; each is undone, then training stops."""
    params = with_changes(
        full_training_params(), learning_rate={1: 1e30}, validation_every=None, epochs=1
    )
    trainer = make_trainer(params, models_dir=tmp_path)
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match="3 consecutive mini-batches.*weights or param"):
        trainer.exp.max_consecutive_nonfinite = 3
        trainer.fit()
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, initial[key]), f"{key} kept an exploded update"
    for path in trainer.checkpoints:
        assert _all_finite(read_checkpoint(path)["model_state_dict"])
        assert torch.equal(
            read_checkpoint(path)["model_state_dict"]["kan.input.weight"],
            initial["kan.input.weight"],
        )


def test_nonfinite_weights_after_a_step_are_rolled_back(make_trainer, tmp_path, monkeypatch):
    trainer = make_trainer(with_changes(full_training_params(), epochs=1), models_dir=tmp_path)
    step = trainer.optimizer.step
    calls = []

    def poisoned_step(*args, **kwargs):
        out = step(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            with torch.no_grad():
                trainer.model.kan.input.weight[0, 0] = float("nan")
        return out

    monkeypatch.setattr(trainer.optimizer, "step", poisoned_step)
    result = trainer.fit()
    assert result.history["status"].tolist() == ["ok", "nonfinite_weights", "ok"]
    assert _all_finite(trainer.model.state_dict())
    for path in trainer.checkpoints:
        assert _all_finite(read_checkpoint(path)["model_state_dict"])


def test_pinned_parameters_warn(make_trainer, tmp_path, caplog):
    """lr = 10 saturates the networks: every parameter at its bound is not a silent "ok"."""
    params = with_changes(
        full_training_params(), learning_rate={1: 10.0}, validation_every=None, epochs=1
    )
    trainer = make_trainer(params, models_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="ddr_pipeline.training.trainer"):
        result = trainer.fit()
    assert "pinned_fraction" in result.history
    assert "sit at their range bounds" in caplog.text or "gradient norm collapsed" in caplog.text
