"""Trainer: learning on the synthetic twin, NaN guard, LR table, monitoring, config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from training_synthetic import (
    TRAIN_PERIOD,
    full_training_params,
    true_n,
    twin_training_params,
    with_changes,
)

import ddr_pipeline.training.trainer as trainer_module
from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data.containers import GaugeSet
from ddr_pipeline.models import build_models
from ddr_pipeline.simulation import ConstantParameters, FeatureIndex, network_outputs
from ddr_pipeline.simulation.batches import build_batch
from ddr_pipeline.training import (
    NonFiniteLossError,
    RecordingMonitor,
    TrainingFailedError,
    predict,
    resolve_device,
)


def _train_period_mse(model, trainer, inputs, gauges) -> float:
    train = GaugeSet.from_table(gauges, inputs, "train")
    start, stop = inputs.day_range(*TRAIN_PERIOD)
    batch = build_batch(inputs, train, list(range(len(train))), start, stop)
    prediction = predict(model, batch, trainer.features, trainer.routing)[5:]
    return float(np.nanmean((prediction - batch.observations.numpy()[5:]) ** 2))


def test_twin_training_lowers_loss_and_recovers_n(make_trainer, twin):
    inputs, gauges, _, _ = twin
    trainer = make_trainer(with_changes(twin_training_params(), epochs=8))
    initial = _train_period_mse(build_models(trainer.config), trainer, inputs, gauges)
    result = trainer.fit()
    assert (result.history["status"] == "ok").all()
    final = _train_period_mse(result.model, trainer, inputs, gauges)
    assert final < 0.25 * initial, f"MSE {initial:.3f} -> {final:.3f}"
    everyone = GaugeSet.from_table(gauges, inputs, None)
    batch = build_batch(inputs, everyone, list(range(len(everyone))), 0, 5)
    with torch.no_grad():
        outputs = network_outputs(result.model, batch.window, trainer.features)
        n_hat = result.model.routing_parameters(outputs, batch.network.n_reaches)["n"].numpy()
    n_true = true_n(inputs.attributes[batch.reach_index, 0])
    correlation = float(np.corrcoef(n_hat, n_true)[0, 1])
    assert correlation > 0.7, f"n recovered with correlation {correlation:.2f}"


def _nan_loss_on(monkeypatch, steps: set[int]) -> list[int]:
    calls: list[int] = []
    original = trainer_module.routing_loss_terms

    def loss(*args, **kwargs):
        numerator, count = original(*args, **kwargs)
        calls.append(len(calls))
        return (numerator * math.nan if calls[-1] in steps else numerator), count

    monkeypatch.setattr(trainer_module, "routing_loss_terms", loss)
    return calls


def test_nonfinite_loss_skips_the_step_and_is_counted(make_trainer, monkeypatch):
    _nan_loss_on(monkeypatch, {1})
    trainer = make_trainer(with_changes(full_training_params(), epochs=1))
    before = {}

    def remember(record):
        if record["mini_batch"] == 0:
            before.update({k: v.clone() for k, v in trainer.model.state_dict().items()})
        if record["mini_batch"] == 1:
            for key, value in trainer.model.state_dict().items():
                assert torch.equal(value, before[key]), f"{key} changed in a skipped step"

    trainer.on_step = remember
    result = trainer.fit()
    assert result.history["status"].tolist() == ["ok", "nonfinite_loss", "ok"]
    assert result.summary["skipped_nonfinite"] == 1


def test_nonfinite_gradient_skips_the_step(make_trainer):
    trainer = make_trainer(with_changes(full_training_params(), epochs=1))
    weight = trainer.model.kan.input.weight
    handle = weight.register_hook(lambda g: g * math.nan)
    with pytest.raises(
        TrainingFailedError, match=r"no mini-batch step succeeded \(3 steps, 3 undone"
    ):
        trainer.fit()  # every step skipped: not a trained model (issue 26)
    handle.remove()
    assert {record["status"] for record in trainer.history} == {"nonfinite_grad"}
    assert trainer.position.total_nonfinite == 3


def test_consecutive_nonfinite_steps_abort(make_trainer, monkeypatch):
    _nan_loss_on(monkeypatch, set(range(100)))
    params = with_changes(full_training_params(), max_consecutive_nonfinite=2)
    with pytest.raises(NonFiniteLossError, match="2 consecutive mini-batches"):
        make_trainer(params).fit()


def test_adamw_shrinks_weights_by_lr_times_decay(make_trainer):
    """adamw decays every weight by lr x weight_decay per step, on top of Adam's update."""
    plain = make_trainer(with_changes(full_training_params(), epochs=1))
    decayed = make_trainer(
        with_changes(full_training_params(), epochs=1, optimizer="adamw", weight_decay=0.5)
    )
    assert type(plain.optimizer) is torch.optim.Adam
    assert type(decayed.optimizer) is torch.optim.AdamW
    assert decayed.optimizer.param_groups[0]["weight_decay"] == 0.5
    weight = next(decayed.model.parameters())
    before = weight.detach().clone()
    weight.grad = torch.zeros_like(weight)  # zero gradient: only the decay moves the weight
    decayed.optimizer.step()
    lr = decayed.optimizer.param_groups[0]["lr"]
    torch.testing.assert_close(weight.detach(), before * (1 - lr * 0.5))


def test_learning_rate_table_and_monitoring(make_trainer):
    monitor = RecordingMonitor()
    result = make_trainer(full_training_params(), monitor=monitor).fit()
    assert result.history["lr"].tolist() == [0.01] * 3 + [0.005] * 3
    assert len(monitor.series("loss")) == 6
    assert monitor.series("loss") == result.history["loss"].tolist()
    for name in ("n", "d_gw", "q_spatial", "top_width", "side_slope", "K_D_delta"):
        lo, mid, hi = (monitor.series(f"{name}_{s}") for s in ("min", "median", "max"))
        assert len(mid) == 6 and all(a <= b <= c for a, b, c in zip(lo, mid, hi, strict=True))
    assert len(monitor.series("batch_nse_median")) == 3  # every 2nd mini-batch
    assert len(monitor.series("val_nse_median")) == 3
    assert all(np.isfinite(monitor.series("val_kge_median")))
    # validation results are kept with the mini-batch they follow (loss-curve figure)
    assert result.history["val_nse_median"].dropna().tolist() == monitor.series("val_nse_median")
    assert len(monitor.series("epoch_mean_loss")) == 2  # one per epoch
    assert sum(1 for _, kind in monitor.artifacts if kind == "checkpoints") == 6


def test_unknown_attribute_names_are_reported(twin):
    inputs = twin[0]
    params = full_training_params()
    params["kan"]["input_var_names"] = ["a0", "elevation"]
    config = load_training_config(params)
    with pytest.raises(KeyError, match=r"kan.input_var_names \['elevation'\]"):
        FeatureIndex.from_names(config, inputs.attribute_names, inputs.forcing_names)


def test_device_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_training_is_deterministic(make_trainer, tmp_path):
    params = with_changes(full_training_params(), epochs=1)
    a = make_trainer(params, models_dir=tmp_path / "a").fit()
    # deterministic algorithms without NaN-filling new buffers (memory; rng.seed_everything)
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.utils.deterministic.fill_uninitialized_memory
    b = make_trainer(params, models_dir=tmp_path / "b").fit()
    assert a.history["loss"].tolist() == b.history["loss"].tolist()
    config = load_training_config(params)
    assert build_models(config).state_dict().keys() == a.model.state_dict().keys()


def _ddr_geometry_params() -> dict:
    """DDR's parameterisation: the KAN learns only n, q_spatial, p_spatial; geometry derived."""
    params = with_changes(twin_training_params(), epochs=1, batch_size=64)
    params["kan"]["learnable_parameters"] = ["n", "q_spatial", "p_spatial"]
    params["params"] = {
        "parameter_ranges": {"n": [0.015, 0.25], "q_spatial": [0.0, 1.0], "p_spatial": [1, 200]},
        "log_space_parameters": ["p_spatial"],
        "defaults": {"x": 0.3},
    }
    params["routing"] = {"x": "cunge", "celerity": "exact", "geometry": "ddr"}
    return params


def test_ddr_geometry_learns_three_parameters_trains_and_routes(make_trainer, twin):
    """routing.geometry ddr: no top_width/side_slope anywhere (neither defaults nor outputs);
    one optimiser step changes the KAN and the trained model routes to finite flows."""
    inputs, gauges, _, _ = twin
    trainer = make_trainer(_ddr_geometry_params())
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.fit()
    assert len(result.history) == 1 and (result.history["status"] == "ok").all()
    after = result.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    everyone = GaugeSet.from_table(gauges, inputs, None)
    batch = build_batch(inputs, everyone, list(range(len(everyone))), 0, 20)
    with torch.no_grad():
        outputs = network_outputs(result.model, batch.window, trainer.features)
        physical = result.model.routing_parameters(outputs, batch.network.n_reaches)
    assert set(physical) == {"n", "q_spatial", "p"}
    flows = predict(result.model, batch, trainer.features, trainer.routing)
    assert np.isfinite(flows).all() and (flows > 0).all()
    stated = ConstantParameters(trainer.config).stated()
    assert set(stated) == {"n", "q_spatial", "p_spatial"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kan.learnable_parameters": ["n", "q_spatial", "p_spatial", "top_width"]},
         r"derives \['top_width'\] from p_spatial"),
        ({"params.observed_geometry": ["side_slope"]}, r"cannot replace the geometry"),
        ({"params.use_leakance": True}, r"ddr has no leakance"),
    ],
)  # fmt: skip
def test_ddr_geometry_refuses_what_it_would_ignore(change: dict, message: str) -> None:
    params = _ddr_geometry_params()
    for key, value in change.items():
        section, name = key.split(".")
        params[section][name] = value
    with pytest.raises(ValueError, match=message):
        load_training_config(params)
