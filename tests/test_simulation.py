"""Tests for ddr_pipeline.inference: chunked routing carrying state, domains, parameter sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pipelines.evaluation import synthetic as syn

from ddr_pipeline import inference
from ddr_pipeline.config import load_training_config
from ddr_pipeline.data.batching import GaugeSet, ModelInputs, build_batch
from ddr_pipeline.models import build_models
from ddr_pipeline.training.forward import FeatureIndex, simulate


@pytest.fixture(scope="module")
def inputs() -> ModelInputs:
    return ModelInputs.from_dataset(syn.model_inputs())


@pytest.fixture(scope="module", params=[False, True], ids=["no-leakance", "leakance"])
def trained(request, inputs: ModelInputs):
    config = load_training_config(syn.training_params(leakance=request.param))
    model = build_models(config)
    source = inference.TrainedParameters(
        model, config, inputs.attribute_names, inputs.forcing_names
    )
    return config, model, source


def _gauges(inputs: ModelInputs) -> GaugeSet:
    return GaugeSet.from_table(syn.gauges_table(), inputs, split=None)


def test_chunked_routing_equals_whole_period(inputs: ModelInputs, trained) -> None:
    _, _, source = trained
    domain = inference.reach_domain(inputs)
    n_days = len(inputs.dates)
    whole = inference.route_period(
        inputs, domain, source, 0, n_days, settings=inference.RouteSettings(chunk_days=n_days)
    ).daily
    chunked = inference.route_period(
        inputs, domain, source, 0, n_days, settings=inference.RouteSettings(chunk_days=10)
    ).daily
    assert whole.shape == (n_days, 7)
    assert np.isfinite(whole).all()
    np.testing.assert_allclose(chunked, whole, rtol=2e-5, atol=1e-5)


def test_parameter_means_average_daily_parameters(inputs: ModelInputs, trained) -> None:
    _, _, source = trained
    domain = inference.reach_domain(inputs)
    result = inference.route_period(
        inputs, domain, source, 0, 12, settings=inference.RouteSettings(5)
    )
    chunk, _ = inference._chunk_inputs(inputs, domain, slice(0, 12), torch.device("cpu"))
    with torch.no_grad():
        physical, _ = source(chunk, None)
    np.testing.assert_allclose(
        result.parameter_means["n"], physical["n"].mean(0).numpy(), rtol=1e-5
    )
    np.testing.assert_allclose(
        result.parameter_means["top_width"], physical["top_width"].numpy(), rtol=1e-5
    )


def test_without_carried_state_chunks_differ(inputs: ModelInputs, trained) -> None:
    """Guard: the equality above really depends on carrying the LSTM + routing state."""
    _, _, source = trained
    domain = inference.reach_domain(inputs)
    whole = inference.route_period(
        inputs, domain, source, 0, 40, settings=inference.RouteSettings(40)
    ).daily
    restarted = inference.route_period(
        inputs, domain, source, 20, 40, settings=inference.RouteSettings(20)
    ).daily
    assert not np.allclose(restarted, whole[20:], rtol=1e-4)


def test_matches_training_forward(inputs: ModelInputs, trained) -> None:
    config, model, source = trained
    gauges = _gauges(inputs)
    batch = build_batch(inputs, gauges, range(len(gauges)), 0, 30)
    features = FeatureIndex.from_names(config, inputs.attribute_names, inputs.forcing_names)
    with torch.no_grad():
        expected = simulate(model.eval(), batch, features, config).daily.numpy()
    domain = inference.gauge_domain(inputs, gauges.reach_index)
    got = inference.route_period(
        inputs, domain, source, 0, 30, settings=inference.RouteSettings(7)
    ).daily
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-5)


def test_gauge_outputs_sum_their_reaches(inputs: ModelInputs, trained) -> None:
    _, _, source = trained
    reaches = inference.route_period(inputs, inference.reach_domain(inputs), source, 0, 15).daily
    gauges = _gauges(inputs)
    domain = inference.gauge_domain(inputs, gauges.reach_index)
    at_gauges = inference.route_period(inputs, domain, source, 0, 15).daily
    for g, idx in enumerate(gauges.reach_index):
        np.testing.assert_allclose(at_gauges[:, g], reaches[:, idx].sum(axis=1), rtol=1e-5)


def test_reach_domain_of_targets_is_upstream_closure(inputs: ModelInputs) -> None:
    domain = inference.reach_domain(inputs, [5])
    assert sorted(inputs.reach_ids[domain.reach_index].tolist()) == [1, 2, 3, 4, 5]
    assert domain.n_outputs == 5
    with pytest.raises(KeyError, match="99"):
        inference.reach_domain(inputs, [99])


def test_constant_parameters_mid_range_and_overrides(inputs: ModelInputs) -> None:
    config = load_training_config(syn.training_params())
    source = inference.ConstantParameters(config, {"n": 0.035})
    assert source.values["n"] == pytest.approx(0.035)
    assert source.values["q_spatial"] == pytest.approx(0.5)
    assert source.values["top_width"] == pytest.approx(np.sqrt(1.0 * 5000.0), rel=1e-5)
    domain = inference.reach_domain(inputs)
    chunk, _ = inference._chunk_inputs(inputs, domain, slice(0, 5), torch.device("cpu"))
    physical, state = source(chunk, None)
    assert state is None
    assert torch.allclose(physical["n"], torch.full((7,), 0.035))
    result = inference.route_period(
        inputs, domain, source, 0, 20, settings=inference.RouteSettings(6)
    )
    assert np.isfinite(result.daily).all() and (result.daily > 0).all()
    np.testing.assert_allclose(result.parameter_means["n"], 0.035, rtol=1e-5)
    with pytest.raises(KeyError, match="manning"):
        inference.ConstantParameters(config, {"manning": 0.03})


def test_missing_attribute_is_named(inputs: ModelInputs) -> None:
    params = syn.training_params()
    params["kan"]["input_var_names"] = ["a1", "elevation"]
    config = load_training_config(params)
    with pytest.raises(KeyError, match="elevation"):
        inference.TrainedParameters(build_models(config), config, inputs.attribute_names, [])


def test_spinup_start(inputs: ModelInputs, caplog) -> None:
    assert inference.spinup_start(inputs.dates, "1980-01-01", 30) == (31, 61)
    assert inference.spinup_start(inputs.dates, "1979-11-11", 30) == (0, 10)
    assert "only 10 of 30 warm-up days" in caplog.text


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="chunk_days"):
        inference.RouteSettings(chunk_days=0)
    with pytest.raises(ValueError, match="divide one day"):
        inference.RouteSettings(dt=7000.0)
