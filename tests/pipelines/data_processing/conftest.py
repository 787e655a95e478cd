"""A tiny synthetic geodataset in the input schema, and matching data_processing parameters.

Network (id -> to_id)::

    10 ─┐
        ├─> 30 ─┐
    20 ─┘       ├─> 50 (outlet)
    40 ─────────┘
    60 -> 999 (not a reach: an outlet)

Gauges: G1 on 30, G2 on 50 (validation), G3 on 60 (never observed), G4 on [10, 20], G5 on 40.
Training reaches (upstream of observed training gauges): 10, 20, 30, 40.
Days 2000-01-01 .. 2000-01-25; train 01-01 .. 01-10, test 01-11 .. 01-20.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

IDS = np.array([10, 20, 30, 40, 50, 60], dtype=np.int64)
TO_IDS = np.array([30, 30, 50, 50, 0, 999], dtype=np.int64)
STAIDS = ["00000001", "00000002", "00000003", "00000004", "00000005"]
GAUGE_REACHES = [[30], [50], [60], [10, 20], [40]]
DATES = pd.date_range("2000-01-01", "2000-01-25", freq="D")


def make_reaches() -> pd.DataFrame:
    """Reaches table (no geometry: the nodes do not need it)."""
    n = IDS.size
    return pd.DataFrame(
        {
            "id": IDS,
            "to_id": TO_IDS,
            "length_m": np.linspace(1000.0, 6000.0, n),
            "slope": np.full(n, 0.001),
            "x": np.full(n, 0.2),
            "top_width": np.full(n, 10.0),
        }
    )


def make_gauges() -> pd.DataFrame:
    """Gauges table."""
    return pd.DataFrame(
        {
            "STAID": pd.Series(STAIDS, dtype="string"),
            "reach_ids": pd.Series([list(r) for r in GAUGE_REACHES], dtype=object),
            "drain_sqkm": np.arange(1.0, 6.0) * 100.0,
            "lat": np.full(5, 40.0),
            "lon": np.full(5, -75.0),
        }
    )


def make_attributes() -> pd.DataFrame:
    """Two attributes; ``a2`` has one missing value (reach 40)."""
    return pd.DataFrame(
        {
            "id": IDS[::-1].copy(),  # any row order
            "a1": np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0]),
            "a2": np.array([1.0, 1.0, np.nan, 2.0, 2.0, 2.0]),
        }
    )


def _store(variable: str, values: np.ndarray, dim: str, ids: object) -> xr.Dataset:
    return xr.Dataset(
        {variable: ((dim, "time"), values.astype(np.float32))},
        coords={dim: ids, "time": DATES},
    )


def make_lateral_inflow() -> xr.Dataset:
    """``Qr`` = 1 + reach position (m3/s)."""
    values = np.repeat((np.arange(IDS.size) + 1.0)[:, None], DATES.size, axis=1)
    return _store("Qr", values, "divide_id", IDS)


def make_forcings() -> xr.Dataset:
    """``P``/``PET``/``Temp``; the day number as value, so period statistics are predictable."""
    day = np.arange(DATES.size, dtype=np.float64)
    values = np.broadcast_to(day, (IDS.size, DATES.size))
    ds = _store("P", values, "divide_id", IDS)
    ds["PET"] = ds["P"] * 0.5
    ds["Temp"] = ds["P"] - 5.0
    return ds


def make_observations() -> xr.Dataset:
    """Streamflow per gauge; G3 is never observed."""
    values = np.tile(np.linspace(1.0, 2.0, DATES.size), (len(STAIDS), 1))
    values[2] = np.nan
    return _store("streamflow", values, "gage_id", np.array(STAIDS))


def make_params() -> dict[str, Any]:
    """``data_processing`` parameters for the synthetic data."""
    return {
        "geodataset": "syn",  # the namespace of tests/pipelines/data_processing/test_pipeline.py
        "periods": {"train": ["2000-01-01", "2000-01-10"], "test": ["2000-01-11", "2000-01-20"]},
        "gauges": {"validation_fraction": 0.2, "seed": 0, "validation_staids": ["00000002"]},
        "lateral_inflow": {"nan_fill": 0.0},
        "attributes": None,
        "forcings": ["P", "PET", "Temp"],
    }


@pytest.fixture
def raw() -> dict[str, Any]:
    """The synthetic raw inputs, keyed like the catalog (without the namespace)."""
    return {
        "reaches": make_reaches(),
        "gauges": make_gauges(),
        "attributes": make_attributes(),
        "lateral_inflow": make_lateral_inflow(),
        "forcings": make_forcings(),
        "observations": make_observations(),
        "lakes": pd.DataFrame(),  # what the optional catalog entry loads without lakes.parquet
    }


@pytest.fixture
def params() -> dict[str, Any]:
    """Fresh parameters (tests may edit them)."""
    return make_params()
