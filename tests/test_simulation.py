"""Tests for ddr_pipeline.simulation: the one rollout, routing problems, parameter sources."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from pipelines.evaluation import synthetic as syn

from ddr_pipeline import simulation
from ddr_pipeline.config.model_source import ModelSource
from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.inference.gauges import PredictionSettings, route_trained
from ddr_pipeline.inference.periods import RoutedDays, spinup_start
from ddr_pipeline.model_store.loader import load_model
from ddr_pipeline.models import build_models
from ddr_pipeline.simulation import FeatureIndex, RoutingSettings
from ddr_pipeline.simulation.batches import build_batch


@pytest.fixture(scope="module")
def inputs() -> ModelInputs:
    return ModelInputs.from_dataset(syn.model_inputs())


@pytest.fixture(scope="module", params=[False, True], ids=["no-leakance", "leakance"])
def trained(request, inputs: ModelInputs):
    config = load_training_config(syn.training_params(leakance=request.param))
    model = build_models(config).eval()
    features = FeatureIndex.from_names(config, inputs.attribute_names, inputs.forcing_names)
    source = simulation.TrainedParameters(model, features)
    return config, model, source


def _settings(config) -> RoutingSettings:
    return RoutingSettings.from_config(config)


def _gauges(inputs: ModelInputs) -> GaugeSet:
    return GaugeSet.from_table(syn.gauges_table(), inputs, split=None)


def _route(inputs, problem, source, config, start, stop, chunk_days=365):
    settings = _settings(config)
    return simulation.rollout(inputs, problem, source, settings, start, stop, chunk_days=chunk_days)


def test_chunked_routing_equals_whole_period(inputs: ModelInputs, trained) -> None:
    config, _, source = trained
    problem = simulation.reach_problem(inputs)
    n_days = len(inputs.dates)
    whole = _route(inputs, problem, source, config, 0, n_days, chunk_days=n_days).daily
    chunked = _route(inputs, problem, source, config, 0, n_days, chunk_days=10).daily
    assert whole.shape == (n_days, 7)
    assert np.isfinite(whole).all()
    np.testing.assert_allclose(chunked, whole, rtol=2e-5, atol=1e-5)


def test_parameter_means_average_daily_parameters(inputs: ModelInputs, trained) -> None:
    config, _, source = trained
    problem = simulation.reach_problem(inputs)
    result = _route(inputs, problem, source, config, 0, 12, chunk_days=5)
    window = simulation.window_inputs(inputs, problem, 0, 12)
    with torch.no_grad():
        physical = source(window, None).physical
    np.testing.assert_allclose(
        result.parameter_means["n"], physical["n"].mean(0).numpy(), rtol=1e-5
    )
    np.testing.assert_allclose(
        result.parameter_means["top_width"], physical["top_width"].numpy(), rtol=1e-5
    )
    means = simulation.parameter_means(inputs, problem, source, 0, 12, chunk_days=5)
    np.testing.assert_allclose(means["n"], result.parameter_means["n"], rtol=1e-6)


def test_without_carried_state_chunks_differ(inputs: ModelInputs, trained) -> None:
    """Guard: the equality above really depends on carrying the LSTM + routing state."""
    config, _, source = trained
    problem = simulation.reach_problem(inputs)
    whole = _route(inputs, problem, source, config, 0, 40, chunk_days=40).daily
    restarted = _route(inputs, problem, source, config, 20, 40, chunk_days=20).daily
    assert not np.allclose(restarted, whole[20:], rtol=1e-4)


def test_chunked_rollout_close_to_training_forward(inputs: ModelInputs, trained) -> None:
    config, model, source = trained
    gauges = _gauges(inputs)
    batch = build_batch(inputs, gauges, range(len(gauges)), 0, 30)
    features = FeatureIndex.from_names(config, inputs.attribute_names, inputs.forcing_names)
    with torch.no_grad():
        expected = simulation.simulate(model, batch, features, _settings(config)).daily.numpy()
    problem = simulation.gauge_problem(inputs, gauges.reach_index)
    got = _route(inputs, problem, source, config, 0, 30, chunk_days=7).daily
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-5)


#: Floors and X default that differ from the engine's defaults (the equality test below).
NON_DEFAULT_PHYSICS = {
    "attribute_minimums": {
        "discharge": 0.05,
        "slope": 2e-3,
        "velocity": 0.05,
        "depth": 0.05,
        "bottom_width": 0.5,
    },
    "defaults": {"p_spatial": 21.0, "x": 0.2},
}


@pytest.mark.parametrize("leakance", [False, True], ids=["no-leakance", "leakance"])
def test_evaluation_forward_equals_training_forward_bitwise(
    tmp_path: Path, inputs: ModelInputs, leakance: bool
) -> None:
    """The evaluation pipeline's forward of a window == the training forward, bit for bit.

    Non-default floors and a non-default Muskingum X fill (one reach has no X) so a path that
    ignores the configured physics fails.
    """
    params = syn.training_params(leakance=leakance)
    params["params"].update(NON_DEFAULT_PHYSICS)
    x = inputs.channel["x"].copy()
    x[2] = np.nan
    inputs = dataclasses.replace(inputs, channel={**inputs.channel, "x": x})
    ckpt = load_model(ModelSource(checkpoint=str(syn.write_checkpoint(tmp_path, params))))
    gauges = _gauges(inputs)
    start, stop = 3, 33

    # training: a batch of all gauges through the trainer's forward (eval mode, no grad)
    batch = build_batch(inputs, gauges, range(len(gauges)), start, stop)
    features = FeatureIndex.from_names(ckpt.config, inputs.attribute_names, inputs.forcing_names)
    with torch.no_grad():
        training = simulation.simulate(ckpt.model.eval(), batch, features, _settings(ckpt.config))

    # evaluation: the routing of predict_period over the same window, one chunk
    problem = simulation.gauge_problem(inputs, gauges.reach_index, gauges.flow_scale)
    days = RoutedDays(route_from=start, start=start, stop=stop, warmup_days=0)
    settings = PredictionSettings(warmup_days=0, chunk_days=stop - start)
    routed = route_trained(ckpt, inputs, problem, days, settings)

    assert np.isfinite(routed.daily).all()
    np.testing.assert_array_equal(routed.daily, training.daily.numpy())

    # guard: the configured physics matter for this window (engine defaults differ)
    default_physics = RoutingSettings(leakance=leakance, x_default=0.3)
    with torch.no_grad():
        other = simulation.simulate(ckpt.model, batch, features, default_physics)
    assert not np.array_equal(other.daily.numpy(), training.daily.numpy())


def test_gauge_outputs_sum_their_reaches(inputs: ModelInputs, trained) -> None:
    config, _, source = trained
    reaches = _route(inputs, simulation.reach_problem(inputs), source, config, 0, 15).daily
    gauges = _gauges(inputs)
    problem = simulation.gauge_problem(inputs, gauges.reach_index)
    at_gauges = _route(inputs, problem, source, config, 0, 15).daily
    for g, idx in enumerate(gauges.reach_index):
        np.testing.assert_allclose(at_gauges[:, g], reaches[:, idx].sum(axis=1), rtol=1e-5)


def test_reach_problem_of_targets_is_upstream_closure(inputs: ModelInputs) -> None:
    problem = simulation.reach_problem(inputs, [5])
    assert sorted(inputs.reach_ids[problem.reach_index].tolist()) == [1, 2, 3, 4, 5]
    assert problem.n_outputs == 5
    with pytest.raises(KeyError, match="99"):
        simulation.reach_problem(inputs, [99])


def test_constant_parameters_mid_range_and_overrides(inputs: ModelInputs) -> None:
    config = load_training_config(syn.training_params())
    source = simulation.ConstantParameters(config, {"n": 0.035})
    assert source.values["n"] == pytest.approx(0.035)
    assert source.values["q_spatial"] == pytest.approx(0.5)
    assert source.values["top_width"] == pytest.approx(np.sqrt(1.0 * 5000.0), rel=1e-5)
    problem = simulation.reach_problem(inputs)
    step = source(simulation.window_inputs(inputs, problem, 0, 5), None)
    assert step.state is None
    assert torch.allclose(step.physical["n"], torch.full((7,), 0.035))
    result = _route(inputs, problem, source, config, 0, 20, chunk_days=6)
    assert np.isfinite(result.daily).all() and (result.daily > 0).all()
    np.testing.assert_allclose(result.parameter_means["n"], 0.035, rtol=1e-5)
    with pytest.raises(KeyError, match="manning"):
        simulation.ConstantParameters(config, {"manning": 0.03})


def test_missing_attribute_is_named(inputs: ModelInputs) -> None:
    params = syn.training_params()
    params["kan"]["input_var_names"] = ["a1", "elevation"]
    config = load_training_config(params)
    with pytest.raises(KeyError, match="elevation"):
        FeatureIndex.from_names(config, inputs.attribute_names, [])


def test_spinup_start(inputs: ModelInputs, caplog) -> None:
    assert spinup_start(inputs.dates, "1980-01-01", 30) == (31, 61)
    assert spinup_start(inputs.dates, "1979-11-11", 30) == (0, 10)
    assert "only 10 of 30 warm-up days" in caplog.text


def test_bad_settings(inputs: ModelInputs, trained) -> None:
    config, _, source = trained
    with pytest.raises(ValueError, match="chunk_days"):
        _route(inputs, simulation.reach_problem(inputs), source, config, 0, 5, chunk_days=0)
    with pytest.raises(ValueError, match="divide one day"):
        RoutingSettings(dt=7000.0)
    with pytest.raises(ValueError, match="chunk_days"):
        PredictionSettings(warmup_days=0, chunk_days=0)


def test_settings_from_config_carry_the_configured_physics() -> None:
    params = syn.training_params(leakance=True)
    params["params"].update(NON_DEFAULT_PHYSICS)
    settings = _settings(load_training_config(params))
    assert settings.engine_options() == {
        "dt": 3600.0,
        "leakance": True,
        "q_min": 0.05,
        "d_min": 0.05,
        "b_min": 0.5,
        "v_min": 0.05,
        "s_min": 2e-3,
        "x_mode": "data",
        "celerity": "wide_rectangle",
        "geometry": "learned",
    }
    x = torch.tensor([0.1, float("nan")])
    filled = settings.channel({"x": x, "length": torch.ones(2)})["x"]
    assert filled.tolist() == pytest.approx([0.1, 0.2])
