"""Level-pool lakes through the rollout: the lakes table, the switch, learned parameters, chunks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pipelines.evaluation import synthetic as syn

from ddr_pipeline import simulation
from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.data.model_inputs import lake_variables
from ddr_pipeline.models import build_models
from ddr_pipeline.simulation import FeatureIndex, RoutingSettings
from ddr_pipeline.simulation.lakes import level_pool

LAKE_REACH_ID = 3  # mid-network: reaches 1 and 2 drain into it, it drains into 5


def _lakes_table() -> pd.DataFrame:
    return pd.DataFrame({
        "lake_id": [11], "reach_id": [LAKE_REACH_ID], "area_km2": [0.5], "max_elevation": [110.0],
        "weir_elevation": [105.0], "weir_coefficient": [0.4], "weir_length": [10.0],
        "dam_length": [10.0], "orifice_elevation": [95.0], "orifice_coefficient": [0.1],
        "orifice_area": [1.0], "initial_elevation": [104.0],
    })  # fmt: skip


@pytest.fixture(scope="module")
def inputs() -> ModelInputs:
    ds = syn.model_inputs()
    return ModelInputs.from_dataset(ds.assign(lake_variables(_lakes_table())))


def _config(lakes: bool, learn: tuple[str, ...] = ()):
    params = syn.training_params()
    params["routing"] = {"lakes": {"enabled": lakes}}
    params["kan"]["learnable_parameters"] = [*params["kan"]["learnable_parameters"], *learn]
    return load_training_config(params)


def _source(config, inputs: ModelInputs):
    torch.manual_seed(0)
    model = build_models(config).eval()
    features = FeatureIndex.from_names(config, inputs.attribute_names, inputs.forcing_names)
    return simulation.TrainedParameters(model, features)


def _route(inputs, config, chunk_days=365):
    problem = simulation.reach_problem(inputs)
    settings = RoutingSettings.from_config(config)
    source = _source(config, inputs)
    return simulation.rollout(inputs, problem, source, settings, 0, len(inputs.dates),
                              chunk_days=chunk_days).daily  # fmt: skip


def test_lakes_off_route_every_reach_as_before(inputs: ModelInputs) -> None:
    without = dataclasses.replace(inputs, lakes=None)
    config = _config(lakes=False)
    np.testing.assert_array_equal(_route(inputs, config), _route(without, config))


def test_a_lake_holds_its_flood_and_chunks_carry_its_level(inputs: ModelInputs) -> None:
    config_on = _config(lakes=True)
    lake = inputs.network.index_of(np.array([LAKE_REACH_ID]))[0]
    whole = _route(inputs, config_on)
    channel = _route(inputs, _config(lakes=False))
    assert np.isfinite(whole).all()
    assert not np.allclose(whole[:, lake], channel[:, lake])
    # the pool damps the outflow's day-to-day variability
    assert np.std(np.diff(whole[:, lake])) < np.std(np.diff(channel[:, lake]))
    chunked = _route(inputs, config_on, chunk_days=10)
    np.testing.assert_allclose(chunked, whole, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["orifice_area", "withdrawal"])
def test_a_learned_lake_parameter_replaces_the_table_value_and_gets_a_gradient(
    inputs: ModelInputs, name: str
) -> None:
    config = _config(lakes=True, learn=(name,))
    problem = simulation.reach_problem(inputs)
    window = simulation.window_inputs(inputs, problem, 0, 30)
    source = _source(config, inputs)
    settings = RoutingSettings.from_config(config)
    result = simulation.rollout_window(problem.network, window, source, settings)
    assert name in result.params
    lake = int(problem.lakes.reach_index[0])
    result.daily[:, lake].sum().backward()
    grads = [p.grad for p in source.model.kan.parameters() if p.grad is not None]
    assert grads and any(bool(g.abs().sum() > 0) for g in grads)


def test_lake_parameters_need_the_lakes_switch_and_the_kan() -> None:
    with pytest.raises(ValueError, match="routing.lakes.enabled is false"):
        _config(lakes=False, learn=("orifice_area",))
    params = syn.training_params()
    params["routing"] = {"lakes": {"enabled": True}}
    params["cuda_lstm"]["learnable_parameters"] = ["n", "weir_length"]
    with pytest.raises(ValueError, match="lake parameters \\['weir_length'\\] are static"):
        load_training_config(params)


def test_evaluation_routes_the_lake_above_a_gauge(tmp_path: Path) -> None:
    """evaluation.predict_period with routing.lakes on: gauge 01000001 sits at the lake reach;
    its predictions differ from channel routing's (same weights), finite."""
    from ddr_pipeline.evaluation.predictions import predict_period
    from ddr_pipeline.inference.gauges import PredictionSettings
    from ddr_pipeline.model_store.checkpoints import load_checkpoint

    ds = syn.model_inputs().assign(lake_variables(_lakes_table()))
    settings = PredictionSettings(warmup_days=10, chunk_days=30, device="cpu")
    predicted = {}
    for lakes in (True, False):
        params = syn.training_params()
        params["routing"] = {"lakes": {"enabled": lakes}}
        torch.manual_seed(0)
        ckpt = load_checkpoint(syn.write_checkpoint(tmp_path / str(lakes), params, final=False))
        out = predict_period(ckpt, ModelInputs.from_dataset(ds), syn.gauges_table(),
                             (syn.TEST_START, "1980-01-30"), settings, "synthetic-run")  # fmt: skip
        predicted[lakes] = out["predictions"]
    at_lake = {k: v.sel(gage_id="01000001").values for k, v in predicted.items()}
    assert np.isfinite(predicted[True].values).all()
    assert not np.allclose(at_lake[True], at_lake[False])
    np.testing.assert_array_equal(  # a gauge off the lake's path is unchanged
        predicted[True].sel(gage_id="01000004"), predicted[False].sel(gage_id="01000004")
    )


def test_the_tables_withdrawal_reaches_the_engine(inputs: ModelInputs) -> None:
    """A ``withdrawal`` column travels table -> model inputs -> LakeTable -> LevelPool; model
    inputs written before it existed read 0."""
    table = _lakes_table().assign(withdrawal=[2.5])
    ds = syn.model_inputs().assign(lake_variables(table))
    with_w = ModelInputs.from_dataset(ds)
    assert with_w.lakes.params["withdrawal"].tolist() == [2.5]
    assert inputs.lakes.params["withdrawal"].tolist() == [0.0]  # the table has no column
    old = ModelInputs.from_dataset(ds.drop_vars("lake_withdrawal"))
    assert old.lakes.params["withdrawal"].tolist() == [0.0]
    settings = RoutingSettings.from_config(_config(lakes=True))
    pool = level_pool(with_w.lakes, {}, settings)
    assert pool.params["withdrawal"].tolist() == [2.5]
