"""Unit tests of the data_processing nodes on the synthetic geodataset (bad input included)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.pipelines.data_processing import nodes

from .conftest import IDS, STAIDS


@pytest.fixture
def validated(raw, params):
    """Every validated intermediate, computed with the nodes themselves."""
    reaches = nodes.validate_reaches(raw["reaches"])
    network = nodes.build_network(reaches)
    gauges = nodes.validate_gauges(raw["gauges"], reaches)
    attributes = nodes.validate_attributes(raw["attributes"], reaches, params)
    lateral, n_filled = nodes.validate_lateral_inflow(raw["lateral_inflow"], reaches, params)
    forcings = nodes.validate_forcings(raw["forcings"], reaches, params)
    observations = nodes.validate_observations(raw["observations"], gauges)
    periods = nodes.check_periods(lateral, forcings, observations, params)
    closures = nodes.gauge_upstream_closures(gauges, network)
    model_gauges = nodes.split_gauges(gauges, closures, observations, periods, params)
    return {
        "reaches": reaches, "network": network, "gauges": gauges, "attributes": attributes,
        "lateral_inflow": lateral, "n_filled": n_filled, "forcings": forcings,
        "observations": observations, "periods": periods, "closures": closures,
        "model_gauges": model_gauges,
    }


def _stats(v, params):
    stats, copy = nodes.compute_normalization_stats(
        attributes=v["attributes"], forcings=v["forcings"], gauges=v["model_gauges"],
        closures=v["closures"], network=v["network"], periods=v["periods"], params=params,
    )
    assert copy is stats
    return stats


# --- reaches and network ------------------------------------------------------------------------
def test_dangling_to_id_becomes_a_logged_outlet(raw, caplog):
    with caplog.at_level(logging.WARNING):
        reaches = nodes.validate_reaches(raw["reaches"])
    assert reaches.loc[reaches["id"] == 60, "to_id"].item() == 0
    assert "60" in caplog.text and "outlet" in caplog.text
    network = nodes.build_network(reaches)
    assert network.is_outlet.sum() == 2


def test_validate_reaches_drops_geometry(raw):
    import geopandas as gpd
    from shapely.geometry import Point

    gdf = gpd.GeoDataFrame(raw["reaches"], geometry=[Point(i, i) for i in range(len(IDS))])
    assert "geometry" not in nodes.validate_reaches(gdf).columns


def test_duplicate_reach_ids_fail(raw):
    reaches = raw["reaches"]
    reaches.loc[1, "id"] = 10
    with pytest.raises(ValueError, match="duplicate id.*10"):
        nodes.validate_reaches(reaches)


@pytest.mark.parametrize(
    ("to_ids", "message"),
    [
        ([20, 10, 50, 50, 0, 0], "cycles.*10"),        # 10 -> 20 -> 10
        ([10, 30, 50, 50, 0, 0], "self-loops.*10"),    # 10 -> 10
    ],
)
def test_bad_topology_fails_naming_ids(raw, to_ids, message):
    reaches = raw["reaches"].assign(to_id=np.array(to_ids, dtype=np.int64))
    with pytest.raises(ValueError, match=message):
        nodes.build_network(nodes.validate_reaches(reaches))


def test_topological_order_puts_upstream_first(raw):
    network = nodes.build_network(nodes.validate_reaches(raw["reaches"]))
    position = np.empty(IDS.size, dtype=int)
    position[network.topological_order] = np.arange(IDS.size)
    down = network.downstream_index
    has_down = down >= 0
    assert (position[has_down] < position[down[has_down]]).all()


# --- gauges, attributes, stores -----------------------------------------------------------------
def test_gauge_on_unknown_reach_fails(raw):
    gauges = raw["gauges"]
    gauges.at[0, "reach_ids"] = [12345]
    reaches = nodes.validate_reaches(raw["reaches"])
    with pytest.raises(KeyError, match="12345"):
        nodes.validate_gauges(gauges, reaches)


def test_missing_attribute_column_fails(raw, params):
    params["attributes"] = ["a1", "soil_depth"]
    reaches = nodes.validate_reaches(raw["reaches"])
    with pytest.raises(KeyError, match="soil_depth"):
        nodes.validate_attributes(raw["attributes"], reaches, params)


def test_attributes_null_means_every_column(validated):
    assert list(validated["attributes"].columns) == ["id", "a1", "a2"]
    assert validated["attributes"]["id"].tolist() == IDS.tolist()


def test_negative_lateral_inflow_fails_naming_reach_and_date(raw, params):
    ds = raw["lateral_inflow"]
    ds["Qr"][2, 4] = -1.0
    reaches = nodes.validate_reaches(raw["reaches"])
    with pytest.raises(ValueError, match=r"negative Qr.*30.*2000-01-05"):
        nodes.validate_lateral_inflow(ds, reaches, params)


def test_nan_lateral_inflow_is_filled_and_counted(raw, params, caplog):
    ds = raw["lateral_inflow"]
    ds["Qr"][0, :3] = np.nan
    # 3 of 20 days: above the default ceilings (10 % of a divide's days), so raise them here
    params["lateral_inflow"].update(nan_fill=0.5, max_nan_fraction_per_reach=1.0, max_nan_fraction=1.0)
    reaches = nodes.validate_reaches(raw["reaches"])
    with caplog.at_level(logging.WARNING):
        out, n_filled = nodes.validate_lateral_inflow(ds, reaches, params)
    assert n_filled == 3
    assert out["Qr"].sel(divide_id=10).values[:3].tolist() == [0.5, 0.5, 0.5]
    assert "filled 3 NaN" in caplog.text


def test_nan_lateral_inflow_without_fill_fails(raw, params):
    ds = raw["lateral_inflow"]
    ds["Qr"][0, 0] = np.nan
    params["lateral_inflow"]["nan_fill"] = None
    reaches = nodes.validate_reaches(raw["reaches"])
    with pytest.raises(ValueError, match="NaN"):
        nodes.validate_lateral_inflow(ds, reaches, params)


def test_missing_forcing_variable_fails(raw, params):
    params["forcings"] = ["P", "Tmax"]
    reaches = nodes.validate_reaches(raw["reaches"])
    with pytest.raises(KeyError, match="Tmax"):
        nodes.validate_forcings(raw["forcings"], reaches, params)


@pytest.mark.parametrize(
    "periods",
    [
        {"train": ["1999-12-25", "2000-01-10"]},                              # starts before
        {"train": ["2000-01-01", "2000-01-10"], "test": ["2000-01-11", "2000-02-01"]},  # ends after
    ],
)
def test_period_outside_the_data_fails(validated, params, periods):
    params["periods"] = periods
    with pytest.raises(ValueError, match="outside the data"):
        nodes.check_periods(
            validated["lateral_inflow"], validated["forcings"], validated["observations"], params
        )


def test_reversed_period_fails(validated, params):
    params["periods"]["train"] = ["2000-01-10", "2000-01-01"]
    with pytest.raises(ValueError, match="before start"):
        nodes.check_periods(
            validated["lateral_inflow"], validated["forcings"], validated["observations"], params
        )


# --- closures, splits, statistics ---------------------------------------------------------------
def test_gauge_upstream_closures(validated):
    ids = validated["network"].ids
    members = [sorted(ids[c].tolist()) for c in validated["closures"]]
    assert members == [[10, 20, 30], [10, 20, 30, 40, 50], [60], [10, 20], [40]]
    assert validated["model_gauges"]["upstream_count"].tolist() == [3, 5, 1, 2, 1]


def test_split_gauges_columns_and_explicit_validation(validated):
    gauges = validated["model_gauges"]
    assert list(gauges.columns[:9]) == [
        "STAID", "reach_ids", "split", "drain_sqkm", "lat", "lon", "upstream_count",
        "n_obs_train", "n_obs_test",
    ]
    assert gauges.set_index("STAID")["split"].to_dict() == {
        "00000001": "train", "00000002": "validation", "00000003": "train",
        "00000004": "train", "00000005": "train",
    }
    assert gauges["n_obs_train"].tolist() == [10, 10, 0, 10, 10]


def test_split_gauges_by_fraction_is_deterministic_and_order_free(validated, params):
    params["gauges"] = {"validation_fraction": 0.4, "seed": 7, "validation_staids": None}
    args = (validated["closures"], validated["observations"], validated["periods"], params)
    first = nodes.split_gauges(validated["gauges"], *args)
    again = nodes.split_gauges(validated["gauges"], *args)
    shuffled_gauges = validated["gauges"].iloc[::-1].reset_index(drop=True)
    shuffled = nodes.split_gauges(shuffled_gauges, args[0][::-1], *args[1:])
    split = first.set_index("STAID")["split"]
    assert (split == "validation").sum() == 2
    assert split.equals(again.set_index("STAID")["split"])
    assert split.to_dict() == shuffled.set_index("STAID")["split"].to_dict()


def test_unknown_validation_gauge_fails(validated, params):
    params["gauges"]["validation_staids"] = ["99999999"]
    with pytest.raises(KeyError, match="99999999"):
        nodes.split_gauges(
            validated["gauges"], validated["closures"], validated["observations"],
            validated["periods"], params,
        )


def test_statistics_use_training_reaches_and_period_only(validated, params):
    stats = _stats(validated, params)
    # training reaches 10, 20, 30, 40 (a1 = 1..4); 50 (validation) and 60 (unobserved) excluded
    assert stats["computed_on"]["n_reaches"] == 4
    assert stats["attributes"]["a1"]["mean"] == pytest.approx(2.5)
    assert stats["attributes"]["a1"]["max"] == pytest.approx(4.0)
    assert stats["attributes"]["a2"]["std"] == pytest.approx(0.0)  # NaN ignored
    # P = day number: the training period holds days 0..9 only
    assert stats["forcings"]["P"]["mean"] == pytest.approx(4.5)
    assert stats["forcings"]["P"]["max"] == pytest.approx(9.0)
    assert stats["computed_on"]["period"] == ["2000-01-01", "2000-01-10"]
    assert set(stats["attributes"]["a1"]) == {"mean", "std", "min", "max", "p10", "p90"}


def test_statistics_fail_without_observed_training_gauges(validated, params):
    gauges = validated["model_gauges"].assign(n_obs_train=0)
    with pytest.raises(ValueError, match="training gauge"):
        _stats({**validated, "model_gauges": gauges}, params)


# --- model inputs and summary -------------------------------------------------------------------
def _lakes_table(reach_id: int) -> pd.DataFrame:
    return pd.DataFrame({
        "lake_id": [7], "reach_id": [reach_id], "area_km2": [2.0], "max_elevation": [110.0],
        "weir_elevation": [105.0], "weir_coefficient": [0.4], "weir_length": [10.0],
        "dam_length": [10.0], "orifice_elevation": [95.0], "orifice_coefficient": [0.1],
        "orifice_area": [1.0], "initial_elevation": [104.0],
    })  # fmt: skip


def test_lakes_reach_the_model_inputs_at_their_reach(validated, params):
    lakes = nodes.validate_lakes(_lakes_table(int(IDS[2])), validated["reaches"])
    ds = nodes.assemble_model_inputs(
        reaches=validated["reaches"], attributes=validated["attributes"],
        lateral_inflow=validated["lateral_inflow"], forcings=validated["forcings"],
        observations=validated["observations"], stats=_stats(validated, params),
        periods=validated["periods"], params=params, lakes=lakes,
    )
    inputs = ModelInputs.from_dataset(ds)
    assert inputs.lakes is not None and inputs.lakes.lake_ids.tolist() == [7]
    assert inputs.lakes.reach_index.tolist() == [2]
    assert inputs.lakes.params["weir_elevation"].tolist() == [105.0]
    assert inputs.lakes.initial_elevation.tolist() == [104.0]


def test_a_geodataset_without_lakes_has_none(validated):
    assert nodes.validate_lakes(pd.DataFrame(), validated["reaches"]).empty
    with pytest.raises(KeyError, match="999"):
        nodes.validate_lakes(_lakes_table(999), validated["reaches"])


def test_assemble_model_inputs(validated, params):
    stats = _stats(validated, params)
    ds = nodes.assemble_model_inputs(
        reaches=validated["reaches"], attributes=validated["attributes"],
        lateral_inflow=validated["lateral_inflow"], forcings=validated["forcings"],
        observations=validated["observations"], stats=stats, periods=validated["periods"],
        params=params,
    )
    assert ds["lateral_inflow"].dims == ("time", "reach_id")
    assert ds["forcings"].dims == ("time", "reach_id", "forcing")
    assert ds["observations"].dims == ("time", "gage_id")
    assert ds["attributes"].dims == ("reach_id", "attribute")
    assert ds.sizes["time"] == 20  # 2000-01-01 .. 2000-01-20: both periods, nothing after
    assert ds["reach_id"].values.tolist() == IDS.tolist()
    assert ds["gage_id"].values.tolist() == STAIDS
    assert ds["to_id"].sel(reach_id=60).item() == 0
    a1 = ds["attributes"].sel(attribute="a1").values
    raw = np.arange(1.0, 7.0)
    np.testing.assert_allclose(a1, (raw - 2.5) / np.std([1.0, 2.0, 3.0, 4.0]), rtol=1e-6)
    assert ds["attributes"].sel(attribute="a2", reach_id=40).item() == 0.0  # NaN -> mean
    assert np.isnan(ds["attributes_raw"].sel(attribute="a2", reach_id=40).item())
    p = ds["forcings"].sel(forcing="P").isel(reach_id=0).values
    np.testing.assert_allclose(p[:10].mean(), 0.0, atol=1e-6)  # z-scored on the train period
    assert ds.attrs["train_period"] == ["2000-01-01", "2000-01-10"]
    assert "top_width" in ds and "side_slope" not in ds


def test_summarize(validated, params):
    stats = _stats(validated, params)
    metrics = nodes.summarize(validated["network"], validated["model_gauges"], stats, 3)
    values = {k: v["value"] for k, v in metrics.items()}
    assert values["n_reaches"] == 6
    assert values["n_outlets"] == 2
    assert values["n_gauges_validation"] == 1
    assert values["n_training_reaches"] == 4
    assert values["n_lateral_inflow_filled"] == 3
    assert all(v["step"] == 0 for v in metrics.values())


def test_gauges_output_round_trips_through_parquet(validated, tmp_path):
    path = tmp_path / "gauges.parquet"
    validated["model_gauges"].to_parquet(path)
    back = pd.read_parquet(path)
    assert [list(r) for r in back["reach_ids"]] == [[30], [50], [60], [10, 20], [40]]
