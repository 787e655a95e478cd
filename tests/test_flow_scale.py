"""Gauge ``flow_scale`` (DDR §3.6): validation, model gauges, batches, inference, baselines."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from pipelines.evaluation import synthetic as syn

from ddr_pipeline import simulation
from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data import schema
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.data.splits import parse_periods
from ddr_pipeline.evaluation import baselines
from ddr_pipeline.pipelines.data_processing import nodes as dp_nodes
from ddr_pipeline.simulation import RoutingSettings, reach_flow_scale
from ddr_pipeline.simulation.batches import build_batch

HEADWATER_GAUGE = "01000004"  # sits on reach 6, a headwater draining to the outlet reach 7
HEADWATER_REACH = 6


@pytest.fixture(scope="module")
def inputs() -> ModelInputs:
    return ModelInputs.from_dataset(syn.model_inputs())


def _table(scale: dict[str, float] | None) -> pd.DataFrame:
    """The synthetic model gauges, with a ``flow_scale`` column when ``scale`` is given."""
    table = syn.gauges_table()
    if scale is not None:
        table["flow_scale"] = [scale.get(s, np.nan) for s in table["STAID"]]
    return table


def _column(inputs: ModelInputs, reach_ids: np.ndarray, reach: int) -> int:
    return int(np.flatnonzero(inputs.reach_ids[reach_ids] == reach)[0])


# --- schema + data_processing -------------------------------------------------------------------
def test_validate_gauges_keeps_flow_scale_with_nan_as_one() -> None:
    table = _table({HEADWATER_GAUGE: 0.5}).drop(columns=["split", "upstream_count"])
    out = schema.validate_gauges(table, syn.REACH_IDS)
    assert out["flow_scale"].dtype == np.float64
    assert out.set_index("STAID")["flow_scale"].to_dict() == {
        "01000001": 1.0,
        "01000002": 1.0,
        "01000003": 1.0,
        HEADWATER_GAUGE: 0.5,
        "01000005": 1.0,
    }
    absent = schema.validate_gauges(table.drop(columns="flow_scale"), syn.REACH_IDS)
    assert "flow_scale" not in absent.columns


@pytest.mark.parametrize("bad", [0.0, -0.2, 1.5, np.inf, "half"])
def test_validate_gauges_rejects_flow_scale_outside_unit_interval(bad: object) -> None:
    table = _table(None).drop(columns=["split", "upstream_count"])
    table["flow_scale"] = pd.Series([1.0, 0.7, bad, 1.0, np.nan], dtype=object)
    with pytest.raises(ValueError, match=r"flow_scale.*01000003") as err:
        schema.validate_gauges(table, syn.REACH_IDS)
    assert "01000002" not in str(err.value)


def test_split_gauges_keeps_flow_scale() -> None:
    table = schema.validate_gauges(
        _table({HEADWATER_GAUGE: 0.5}).drop(columns=["split", "upstream_count"]), syn.REACH_IDS
    )
    ds = syn.model_inputs(n_days=20)
    observations = xr.Dataset({"streamflow": ds["observations"].transpose("gage_id", "time")})
    closures = [np.arange(size) for size in (3, 5, 7, 1, 1)]
    periods = parse_periods({"train": [syn.START, "1979-11-20"]})
    params = {
        "geodataset": "syn",
        "periods": {"train": [syn.START, "1979-11-20"]},
        "gauges": {"validation_fraction": 0.2, "seed": 0},
    }
    out = dp_nodes.split_gauges(table, closures, observations, periods, params)
    assert list(out.columns[:8]) == [*dp_nodes.GAUGE_COLUMNS, "flow_scale"]
    assert out.set_index("STAID").loc[HEADWATER_GAUGE, "flow_scale"] == 0.5
    without = dp_nodes.split_gauges(
        table.drop(columns="flow_scale"), closures, observations, periods, params
    )
    assert "flow_scale" not in without.columns


# --- training batches -----------------------------------------------------------------------------
def test_batch_halves_the_headwater_gauge_inflow(inputs: ModelInputs) -> None:
    scaled = GaugeSet.from_table(_table({HEADWATER_GAUGE: 0.5}), inputs, None)
    plain = GaugeSet.from_table(_table(None), inputs, None)
    assert plain.flow_scale is None
    positions = list(range(len(plain)))
    a = build_batch(inputs, scaled, positions, 5, 25)
    b = build_batch(inputs, plain, positions, 5, 25)
    col = _column(inputs, b.reach_index, HEADWATER_REACH)
    raw = torch.from_numpy(inputs.lateral_inflow[5:25][:, b.reach_index])
    torch.testing.assert_close(b.window.lateral_inflow, raw)
    torch.testing.assert_close(
        a.window.lateral_inflow[:, col], 0.5 * b.window.lateral_inflow[:, col]
    )
    others = np.arange(b.reach_index.size) != col
    torch.testing.assert_close(
        a.window.lateral_inflow[:, others], b.window.lateral_inflow[:, others]
    )


def test_batch_scales_only_its_own_gauges(inputs: ModelInputs) -> None:
    gauges = GaugeSet.from_table(_table({HEADWATER_GAUGE: 0.5}), inputs, None)
    outlet = gauges.staids.index("01000003")  # reach 7, drains reach 6
    batch = build_batch(inputs, gauges, [outlet], 0, 10)
    raw = torch.from_numpy(inputs.lateral_inflow[0:10][:, batch.reach_index])
    torch.testing.assert_close(batch.window.lateral_inflow, raw)


def test_gauge_set_rejects_invalid_flow_scale(inputs: ModelInputs) -> None:
    with pytest.raises(ValueError, match="01000002"):
        GaugeSet.from_table(_table({"01000002": 1.2}), inputs, None)


def test_reach_flow_scale_shared_reach_takes_the_smallest_factor() -> None:
    scale = reach_flow_scale(5, [np.array([1, 2]), np.array([2]), np.array([4])], [0.5, 0.25, 1.0])
    np.testing.assert_allclose(scale, [1.0, 0.5, 0.25, 1.0, 1.0])
    np.testing.assert_array_equal(reach_flow_scale(3, [np.array([0])], None), np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        reach_flow_scale(3, [np.array([0])], [0.5, 0.5])


# --- inference + baselines ------------------------------------------------------------------------
def test_inference_routes_the_scaled_inflow(inputs: ModelInputs) -> None:
    config = load_training_config(syn.training_params())
    source = simulation.ConstantParameters(config)
    settings = RoutingSettings.from_config(config)
    scaled = GaugeSet.from_table(_table({HEADWATER_GAUGE: 0.5}), inputs, None)
    domain = simulation.gauge_problem(inputs, scaled.reach_index, scaled.flow_scale)

    def route(inputs, domain):
        return simulation.rollout(inputs, domain, source, settings, 0, 20, chunk_days=7)

    got = route(inputs, domain).daily
    # the same as routing inputs whose headwater inflow was halved beforehand
    halved = inputs.lateral_inflow.copy()
    halved[:, _column(inputs, np.arange(inputs.reach_ids.size), HEADWATER_REACH)] *= 0.5
    expected_inputs = dataclasses.replace(inputs, lateral_inflow=halved)
    plain_domain = simulation.gauge_problem(inputs, scaled.reach_index)
    assert plain_domain.inflow_scale is None
    expected = route(expected_inputs, plain_domain).daily
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    unscaled = route(inputs, plain_domain)
    g = scaled.staids.index(HEADWATER_GAUGE)
    assert np.all(got[:, g] < unscaled.daily[:, g])
    np.testing.assert_allclose(got[:, 0], unscaled.daily[:, 0], rtol=1e-6)  # not downstream of 6


def test_summed_baseline_sees_the_scaled_inflow(inputs: ModelInputs) -> None:
    scaled = GaugeSet.from_table(_table({HEADWATER_GAUGE: 0.5}), inputs, None)
    qlat = inputs.lateral_inflow[:10]
    got = baselines.summed_lateral_inflow(
        qlat, inputs.network, scaled.reach_index, scaled.flow_scale
    )
    plain = baselines.summed_lateral_inflow(qlat, inputs.network, scaled.reach_index)
    col = _column(inputs, np.arange(inputs.reach_ids.size), HEADWATER_REACH)
    g_head, g_out = scaled.staids.index(HEADWATER_GAUGE), scaled.staids.index("01000003")
    np.testing.assert_allclose(got[:, g_head], 0.5 * plain[:, g_head], rtol=1e-6)
    np.testing.assert_allclose(got[:, g_out], plain[:, g_out] - 0.5 * qlat[:, col], rtol=1e-5)
    np.testing.assert_allclose(got[:, 0], plain[:, 0], rtol=1e-6)
    with_nan = qlat.copy()
    with_nan[3, col] = np.nan
    out = baselines.summed_lateral_inflow(
        with_nan, inputs.network, scaled.reach_index, scaled.flow_scale
    )
    assert np.isnan(out[3, g_head]) and np.isnan(out[3, g_out]) and np.isfinite(out[3, 0])
