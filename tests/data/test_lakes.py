"""The optional lakes table: validator (one bad input each, messages name lake and column),
NWM's defaults only when asked, NWM's ifd -> initial elevation, reader round trip."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ddr_pipeline.data import io, lakes, schema

REACH_IDS = [1, 2, 3, 4]


def lake_table(**overrides: object) -> pd.DataFrame:
    """Two valid lakes (NWM-like values: the Hurricane Laura case's lake and a second one)."""
    data: dict[str, object] = {
        "lake_id": [120053052, 7],
        "reach_id": [3, 4],
        "area_km2": [1.17598, 20.0],
        "max_elevation": [106.78, 200.0],
        "weir_elevation": [106.255, 199.0],
        "weir_coefficient": [0.4, 0.4],
        "weir_length": [10.0, 25.0],
        "dam_length": [10.0, 100.0],
        "orifice_elevation": [103.28, 190.0],
        "orifice_coefficient": [0.1, 0.1],
        "orifice_area": [1.0, 4.0],
        "initial_elevation": [106.43, 199.0],
        "name": ["a", None],
        "source": ["LAKEPARM", "LAKEPARM"],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def test_valid_lakes_pass_with_dtypes() -> None:
    out = schema.validate_lakes(lake_table(lake_id=[1.0, 7.0]), REACH_IDS)
    assert out["lake_id"].dtype == np.int64 and out["reach_id"].dtype == np.int64
    assert all(out[c].dtype == np.float64 for c in schema.LAKE_FLOAT_COLS)
    assert out["name"].tolist() == ["a", ""]
    assert set(schema.LAKE_PARAMS) <= set(schema.UNITS)


def test_missing_lake_column_named() -> None:
    with pytest.raises(KeyError, match="weir_length"):
        schema.validate_lakes(lake_table().drop(columns="weir_length"), REACH_IDS)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("lake_id", [5, 5], r"duplicate lake_id values \[5\]"),
        ("reach_id", [3, 3], r"duplicate reach_id values \[3\]"),
        ("area_km2", [0.0, 1.0], r"'area_km2' must be > 0 for lake_id \[120053052\]"),
        ("max_elevation", [np.inf, 200.0], r"'max_elevation' must be finite for lake_id \[12"),
        ("weir_coefficient", [0.4, -0.1], r"'weir_coefficient' must be >= 0 for lake_id \[7\]"),
        ("weir_length", [-1.0, 1.0], r"'weir_length' must be >= 0 for lake_id \[120053052\]"),
        ("dam_length", [1.0, -1.0], r"'dam_length' must be >= 0 for lake_id \[7\]"),
        ("orifice_coefficient", [-0.1, 0.1], r"'orifice_coefficient' must be >= 0"),
        ("orifice_area", [1.0, -4.0], r"'orifice_area' must be >= 0 for lake_id \[7\]"),
        ("weir_elevation", [106.255, 201.0], r"'weir_elevation' must be <= max_elevation .*\[7\]"),
        ("orifice_elevation", [107.0, 190.0], r"'orifice_elevation' must be <= max_elevation"),
        ("initial_elevation", [0.9, 199.0], r"'initial_elevation' must lie within .*\[120053052\]"),
        ("initial_elevation", [106.4, 220.1], r"'initial_elevation' must lie within .*\[7\]"),
        ("lake_id", [None, 7], r"column 'lake_id' has missing values"),
        ("reach_id", ["x", 4], r"column 'reach_id' cannot be cast to int64"),
    ],
)
def test_bad_lake_values_named(column: str, values: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schema.validate_lakes(lake_table(**{column: values}), REACH_IDS)


def test_withdrawal_is_optional_absent_or_nan_is_zero() -> None:
    out = schema.validate_lakes(lake_table(), REACH_IDS)
    assert out["withdrawal"].dtype == np.float64 and out["withdrawal"].tolist() == [0.0, 0.0]
    out = schema.validate_lakes(lake_table(withdrawal=[np.nan, 3.5]), REACH_IDS)
    assert out["withdrawal"].tolist() == [0.0, 3.5]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0, -0.5], r"'withdrawal' must be >= 0 for lake_id \[7\]"),
        ([np.inf, 1.0], r"'withdrawal' must be finite for lake_id \[120053052\]"),
        (["x", 1.0], r"'withdrawal' cannot be cast to float64"),
    ],
)
def test_bad_withdrawal_named(values: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schema.validate_lakes(lake_table(withdrawal=values), REACH_IDS)


def test_lake_on_unknown_reach_named() -> None:
    with pytest.raises(KeyError, match=r"lake_id \[7\]: unknown reach ids \[99\]"):
        schema.validate_lakes(lake_table(reach_id=[3, 99]), REACH_IDS)


def test_initial_elevation_margin_allows_a_flood_restart_and_a_dead_pool() -> None:
    # one active depth (10 m for lake 7) beyond either end is still accepted
    out = schema.validate_lakes(lake_table(initial_elevation=[102.0, 209.5]), REACH_IDS)
    assert out["initial_elevation"].tolist() == [102.0, 209.5]


@pytest.mark.parametrize("column", [*schema.NWM_LAKE_DEFAULTS, "initial_elevation"])
def test_missing_parameter_is_an_error_without_the_fallback(column: str) -> None:
    with pytest.raises(ValueError, match=rf"'{column}' must be finite \(nwm_defaults=True"):
        schema.validate_lakes(lake_table(**{column: [np.nan, 1.0]}), REACH_IDS)


@pytest.mark.parametrize("column", ["area_km2", "max_elevation", "weir_elevation"])
def test_missing_area_or_elevation_is_an_error_even_with_the_fallback(column: str) -> None:
    with pytest.raises(ValueError, match=rf"'{column}' must be finite for lake_id \[7\]"):
        schema.validate_lakes(
            lake_table(**{column: [1.0 if column == "area_km2" else 106.78, np.nan]}),
            REACH_IDS,
            nwm_defaults=True,
        )


def test_nwm_defaults_fill_only_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    table = lake_table(weir_length=[np.nan, 25.0], initial_elevation=[106.43, np.nan])
    with caplog.at_level(logging.WARNING):
        out = schema.validate_lakes(table, REACH_IDS, nwm_defaults=True)
    assert out["weir_length"].tolist() == [10.0, 25.0]
    assert out["initial_elevation"].iloc[1] == pytest.approx(190.0 + 0.9 * 10.0)
    assert "weir_length missing for lake_id [120053052]" in caplog.text
    assert "initial_elevation missing for lake_id [7]" in caplog.text


def test_initial_elevation_from_ifd_is_nwms_rule() -> None:
    # module_RT / t-route hybrid state: OrificeE + ifd * (LkMxE - OrificeE)
    start = schema.initial_elevation_from_ifd(np.array([103.28]), np.array([106.78]), 0.9)
    assert start[0] == pytest.approx(103.28 + 0.9 * 3.5)


def test_read_lakes_round_trip_and_absent_table(tmp_path: Path) -> None:
    assert lakes.read_lakes(tmp_path, REACH_IDS) is None
    lakes.write_lakes(lake_table(), tmp_path, REACH_IDS)
    back = lakes.read_lakes(tmp_path, REACH_IDS)
    assert back is not None
    pd.testing.assert_frame_equal(back, schema.validate_lakes(lake_table(), REACH_IDS))
    assert io.read_table(tmp_path / schema.LAKES_FILE)["lake_id"].dtype == np.int64


def test_read_lakes_validates(tmp_path: Path) -> None:
    io.write_table(lake_table(reach_id=[3, 50]), tmp_path / schema.LAKES_FILE)
    with pytest.raises(KeyError, match="unknown reach ids"):
        lakes.read_lakes(tmp_path, REACH_IDS)


def test_write_lakes_refuses_bad_tables(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="area_km2"):
        lakes.write_lakes(lake_table(area_km2=[-1.0, 1.0]), tmp_path, REACH_IDS)
    assert not (tmp_path / schema.LAKES_FILE).exists()


def test_committed_drb_lakes_validate() -> None:
    root = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "drb"
    if not (root / schema.LAKES_FILE).exists():
        pytest.skip("the DRB dataset has no lakes table")
    reach_ids = io.read_reaches(root / schema.REACHES_FILE)["id"]
    table = lakes.read_lakes(root, reach_ids)
    assert table is not None and table["reach_id"].isin(reach_ids).all()
