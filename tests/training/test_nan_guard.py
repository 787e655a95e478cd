"""The NaN guard catches blow-ups: exploded weights are undone and never checkpointed."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch
from training_synthetic import full_training_params, with_changes

from ddr_pipeline.config.training import ConfigError, load_training_config
from ddr_pipeline.model_store.checkpoints import read_checkpoint
from ddr_pipeline.training import NonFiniteLossError, TrainingFailedError
from ddr_pipeline.training.trainer import check_outcome


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


def _poison_second_step(trainer, monkeypatch) -> None:
    """Make the optimiser's second step leave a NaN weight behind."""
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


def test_nonfinite_weights_after_a_step_are_rolled_back(make_trainer, tmp_path, monkeypatch):
    trainer = make_trainer(with_changes(full_training_params(), epochs=1), models_dir=tmp_path)
    _poison_second_step(trainer, monkeypatch)
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


def test_a_training_without_a_successful_step_fails(make_trainer, tmp_path):
    """Every step undone but fewer than max_consecutive_nonfinite: not reported as trained."""
    params = with_changes(
        full_training_params(), learning_rate={1: 1e30}, validation_every=None, epochs=1
    )
    trainer = make_trainer(params, models_dir=tmp_path)
    trainer.exp.max_consecutive_nonfinite = 100
    with pytest.raises(TrainingFailedError, match="no mini-batch step succeeded.*3 undone"):
        trainer.fit()


def test_too_many_undone_steps_fail_the_training(make_trainer, tmp_path, monkeypatch):
    params = with_changes(full_training_params(), epochs=1, max_nonfinite_fraction=0.2)
    trainer = make_trainer(params, models_dir=tmp_path)
    _poison_second_step(trainer, monkeypatch)
    with pytest.raises(TrainingFailedError, match=r"1 of 3 .*max_nonfinite_fraction=0.2"):
        trainer.fit()


def test_a_non_finite_final_loss_fails_the_training():
    history = pd.DataFrame({"status": ["ok", "ok"], "loss": [0.5, float("inf")]})
    with pytest.raises(TrainingFailedError, match="final loss is inf"):
        check_outcome(history, undone=0, max_fraction=0.5)
    check_outcome(history.iloc[:1], undone=0, max_fraction=0.5)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("learning_rate", {1: float("inf")}),
        ("learning_rate", {1: 0.01, 2: float("nan")}),
        ("grad_clip_norm", float("inf")),
    ],
)
def test_learning_rates_and_clip_norms_must_be_finite(key, value):
    params = with_changes(full_training_params(), **{key: value})
    with pytest.raises(ConfigError, match=f"training.experiment.{key}.*finite"):
        load_training_config(params)
