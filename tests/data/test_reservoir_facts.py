"""Level-pool parameters derived from reservoir facts (ingest/reservoir_facts.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ddr_pipeline.ingest.reservoir_facts import (
    GRAVITY,
    NWM_ORIFICE_COEFFICIENT,
    convert_reservoirs,
    level_pool_parameters,
    read_facts,
)

DRB = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "drb"


def _facts(tmp_path: Path, **changes: object) -> Path:
    facts = pd.read_csv(DRB / "reservoir_facts.csv", dtype={"gauge_below": str})
    for column, value in changes.items():
        facts.loc[0, column] = value
    path = tmp_path / "facts.csv"
    facts.to_csv(path, index=False)
    return path


def test_the_walled_pool_holds_the_usable_capacity_and_passes_the_full_release() -> None:
    facts = read_facts(DRB / "reservoir_facts.csv")
    lakes = level_pool_parameters(facts)
    head = lakes["weir_elevation"] - lakes["orifice_elevation"]
    np.testing.assert_allclose(head * lakes["area_km2"] * 1e6, facts["usable_capacity_m3"])
    release = NWM_ORIFICE_COEFFICIENT * lakes["orifice_area"] * np.sqrt(2 * GRAVITY * head)
    np.testing.assert_allclose(release, facts["full_release_m3s"])
    assert (lakes["initial_elevation"] <= lakes["weir_elevation"]).all()
    assert (lakes["max_elevation"] > lakes["weir_elevation"]).all()


def test_the_drb_lakes_table_is_current(tmp_path: Path) -> None:
    """The committed lakes.parquet is what the committed facts give (regenerate if not)."""
    (tmp_path / "reaches.parquet").write_bytes((DRB / "reaches.parquet").read_bytes())
    fresh = convert_reservoirs(DRB / "reservoir_facts.csv", tmp_path, 3.0)
    pd.testing.assert_frame_equal(pd.read_parquet(DRB / "lakes.parquet"), fresh)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("usable_capacity_m3", -1.0, "usable_capacity_m3"),
        ("full_release_m3s", np.nan, "full_release_m3s"),
        ("initial_fill", 1.5, "initial_fill"),
    ],
)
def test_bad_facts_name_the_column_and_lake(
    tmp_path: Path, column: str, value: float, message: str
) -> None:
    with pytest.raises(ValueError, match=rf"{message}.*lake_id \[1\]"):
        read_facts(_facts(tmp_path, **{column: value}))


def test_a_reach_outside_the_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "reaches.parquet").write_bytes((DRB / "reaches.parquet").read_bytes())
    with pytest.raises(KeyError, match="reach_id \\[999999\\]"):
        convert_reservoirs(_facts(tmp_path, reach_id=999999), tmp_path, 3.0)
    assert not (tmp_path / "lakes.parquet").exists()
