"""Output-hour offset (DDR's tau): daily means of shifted hours, the same in every path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from pipelines.evaluation import synthetic as syn

from ddr_pipeline import simulation
from ddr_pipeline.config.training import ConfigError, load_training_config
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.models import build_models
from ddr_pipeline.routing import muskingum_cunge
from ddr_pipeline.simulation import FeatureIndex, RoutingSettings
from ddr_pipeline.simulation.pooling import ShiftedPooling
from ddr_pipeline.simulation.problem import window_inputs
from ddr_pipeline.simulation.rollout import rollout_window


def _block_means(states: np.ndarray, block: int) -> torch.Tensor:
    """Means of consecutive ``block``-step blocks of the end-of-step states 1..T."""
    return torch.from_numpy(states.reshape(-1, block).mean(axis=1)).reshape(-1, 1)


@pytest.mark.parametrize(
    ("shift", "block", "per_day"), [(0, 24, 1), (9, 3, 8), (8, 8, 3), (-5, 1, 24), (12, 12, 2)]
)
def test_pool_of_a_known_series(shift: int, block: int, per_day: int) -> None:
    # end-of-step state t (t = 1 .. 24 D) has the value t: day d of offset s is the mean of
    # t = 24d+1+s .. 24d+24+s, i.e. 24d + 12.5 + s, where all of them were routed
    pool = ShiftedPooling(24, shift)
    assert (pool.block_steps, pool.blocks_per_day) == (block, per_day)
    n_days = 4
    states = np.arange(1.0, 24 * n_days + 1)
    daily = pool.pool(_block_means(states, block), n_days).numpy()[:, 0]
    full = 24 * np.arange(n_days) + 12.5 + shift
    if shift > 0:  # the last day has only the routed hours 24(D-1)+1+s .. 24D
        np.testing.assert_allclose(daily[:-1], full[:-1])
        assert daily[-1] == pytest.approx(states[24 * (n_days - 1) + shift :].mean())
    elif shift < 0:  # the first day has only hours 1 .. 24+s
        np.testing.assert_allclose(daily[1:], full[1:])
        assert daily[0] == pytest.approx(states[: 24 + shift].mean())
    else:
        np.testing.assert_allclose(daily, full)
    # one routed day before the output (first_day=1): every output day is whole
    earlier = pool.pool(_block_means(np.arange(1.0, 24 * (n_days + 1) + 1), block), n_days, 1)
    if shift <= 0:
        np.testing.assert_allclose(earlier.numpy()[:, 0], full + 24)


def test_pool_rejects_offsets_of_a_day_and_days_without_blocks() -> None:
    with pytest.raises(ValueError, match="less than a day"):
        ShiftedPooling(24, 24)
    with pytest.raises(ValueError, match="no routed block"):
        ShiftedPooling(24, 9).pool(torch.zeros(8, 1), 3)


def test_pool_gradient_is_the_pooling_weights() -> None:
    blocks = torch.arange(16.0, dtype=torch.float64).reshape(16, 1).requires_grad_()
    ShiftedPooling(24, 9).pool(blocks, 2).sum().backward()
    # day 0 averages blocks 3..10, day 1 blocks 11..15 (5 routed of its 8)
    expected = np.zeros(16)
    expected[3:11] = 1 / 8
    expected[11:16] = 1 / 5
    np.testing.assert_allclose(blocks.grad.numpy()[:, 0], expected)


@pytest.fixture(scope="module")
def inputs() -> ModelInputs:
    return ModelInputs.from_dataset(syn.model_inputs())


@pytest.fixture(scope="module", params=[False, True], ids=["kan", "kan+lstm-leakance"])
def setup(request, inputs: ModelInputs):
    config = load_training_config(syn.training_params(leakance=request.param))
    model = build_models(config).eval()
    features = FeatureIndex.from_names(config, inputs.attribute_names, inputs.forcing_names)
    return config, simulation.TrainedParameters(model, features)


def _dense_shifted(inputs, problem, source, settings, start, stop, shift) -> np.ndarray:
    """Day means of hours 24d+1+shift .. 24d+24+shift from the dense hourly trajectory."""
    window = window_inputs(inputs, problem, start, stop)
    with torch.no_grad():
        step = source(window, None)
        states = muskingum_cunge(
            problem.network,
            window.lateral_inflow,
            settings.channel(window.channel),
            step.physical,
            substeps=settings.steps_per_day,
            **settings.engine_options(),
        ).numpy()
    whole = [d for d in range(stop - start - 1) if 24 * d + 1 + shift >= 1]
    out = np.full((stop - start - 1, states.shape[1]), np.nan)
    for d in whole:
        out[d] = states[24 * d + 1 + shift : 24 * d + 25 + shift].mean(0)
    return out


@pytest.mark.parametrize("shift", [8, 9, -3])
def test_window_means_are_the_shifted_hours_of_the_trajectory(inputs, setup, shift) -> None:
    config, source = setup
    settings = dataclasses.replace(RoutingSettings.from_config(config), output_shift_hours=shift)
    problem = simulation.reach_problem(inputs)
    expected = _dense_shifted(inputs, problem, source, settings, 0, 20, shift)
    window = window_inputs(inputs, problem, 0, 20)
    with torch.no_grad():
        got = rollout_window(problem.network, window, source, settings).daily.numpy()
    assert got.shape == (20, problem.network.n_reaches)
    inner = slice(1, 19) if shift < 0 else slice(0, 19)
    np.testing.assert_allclose(got[inner], expected[inner], rtol=1e-5, atol=1e-6)


def test_offset_zero_is_bitwise_the_daily_mean(inputs, setup) -> None:
    config, source = setup
    settings = RoutingSettings.from_config(config)
    assert settings.output_shift_hours == 0
    problem = simulation.reach_problem(inputs)
    window = window_inputs(inputs, problem, 0, 12)
    with torch.no_grad():
        got = rollout_window(problem.network, window, source, settings).daily
        states = muskingum_cunge(
            problem.network,
            window.lateral_inflow,
            settings.channel(window.channel),
            source(window, None).physical,
            substeps=24,
            **settings.engine_options(),
        )
    expected = states[1:].reshape(12, 24, -1).double().mean(dim=1)
    np.testing.assert_allclose(got.double().numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)


def test_rollout_in_chunks_is_exact_with_an_offset(inputs, setup) -> None:
    config, source = setup
    raw = syn.training_params(leakance=config.params.use_leakance)
    raw["routing"] = {**raw.get("routing", {}), "output_shift_hours": 9}
    shifted = load_training_config(raw)
    settings = RoutingSettings.from_config(shifted)
    assert settings.output_shift_hours == 9 and settings.shift_steps == 9
    problem = simulation.reach_problem(inputs)
    whole = simulation.rollout(inputs, problem, source, settings, 0, 20, chunk_days=20).daily
    chunked = simulation.rollout(inputs, problem, source, settings, 0, 20, chunk_days=6).daily
    np.testing.assert_allclose(chunked, whole, rtol=2e-5, atol=1e-5)
    # the rollout routes day 20 too, so its last day pools all 24 shifted hours
    expected = _dense_shifted(inputs, problem, source, settings, 0, 21, 9)
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-6)


def test_offset_is_validated() -> None:
    raw = syn.training_params()
    raw["routing"] = {**raw.get("routing", {}), "output_shift_hours": 24}
    with pytest.raises(ConfigError, match="output_shift_hours"):
        load_training_config(raw)
    with pytest.raises(ValueError, match="less than a day"):
        RoutingSettings(output_shift_hours=30)
    with pytest.raises(ValueError, match="whole number"):
        RoutingSettings(dt=7200.0, output_shift_hours=3)
