"""Level-pool parameters of managed reservoirs from published facts (capacity, area, spillway).

Where no NWM ``LAKEPARM`` exists (the DRB NHM domain), a reservoir's level-pool parameters are
derived from what dam owners and the USGS publish: surface area, usable capacity, spillway crest,
dam length and a typical outlet release. The level pool is vertically walled
(docs/routing.md), so the derivation keeps its storage right where it matters:

* ``weir_elevation`` = the spillway crest; ``max_elevation`` = crest + ``freeboard_m``;
* ``orifice_elevation`` = crest − usable capacity / area: the walled pool holds the usable
  capacity between the outlet and the spillway, as the real reservoir does;
* ``orifice_area`` = full release / (C_o · √(2 g (crest − outlet))): the outlet passes
  ``full_release_m3s`` with a full pool;
* ``initial_elevation`` = outlet + ``initial_fill`` · (crest − outlet);
* ``weir_coefficient`` and ``orifice_coefficient`` take NWM's defaults (0.4, 0.1).

Every derived value is a starting point: training may learn the level-pool parameters per lake
(docs/reservoirs.md). ``ddr-convert-reservoirs`` writes the result as the dataset's
``lakes.parquet``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ddr_pipeline.data.io import atomic_path

#: Gravity (m s⁻²), as NWM's level pool.
GRAVITY = 9.81
#: NWM's default weir and orifice coefficients (LAKEPARM defaults of the NWM v2.1 hydrofabric).
NWM_WEIR_COEFFICIENT = 0.4
NWM_ORIFICE_COEFFICIENT = 0.1
#: Height (m) of the dam crest above the spillway crest when the facts give none.
DEFAULT_FREEBOARD_M = 3.0

FACT_COLUMNS: dict[str, str] = {
    "lake_id": "int64",
    "name": "object",
    "reach_id": "int64",
    "surface_area_km2": "float64",
    "usable_capacity_m3": "float64",
    "spillway_crest_m": "float64",
    "spillway_length_m": "float64",
    "dam_length_m": "float64",
    "full_release_m3s": "float64",
    "initial_fill": "float64",
    "source": "object",
}
_POSITIVE = ("surface_area_km2", "usable_capacity_m3", "spillway_length_m", "dam_length_m",
             "full_release_m3s")  # fmt: skip


def read_facts(path: Path) -> pd.DataFrame:
    """The facts table (CSV), checked: every column present, numbers finite and in range."""
    facts = pd.read_csv(path, dtype={"gauge_below": str})
    missing = [c for c in FACT_COLUMNS if c not in facts.columns]
    if missing:
        raise KeyError(f"{path}: reservoir facts lack columns {missing}")
    for column in _POSITIVE:
        bad = facts.loc[~(facts[column] > 0), "lake_id"].tolist()
        if bad:
            raise ValueError(f"{path}: column {column!r} must be finite and > 0 (lake_id {bad})")
    for column in ("spillway_crest_m", "initial_fill"):
        bad = facts.loc[~np.isfinite(facts[column]), "lake_id"].tolist()
        if bad:
            raise ValueError(f"{path}: column {column!r} must be finite (lake_id {bad})")
    bad_fill = facts.loc[~facts["initial_fill"].between(0.0, 1.0), "lake_id"].tolist()
    if bad_fill:
        raise ValueError(f"{path}: initial_fill must lie in [0, 1] (lake_id {bad_fill})")
    return facts.astype({k: v for k, v in FACT_COLUMNS.items() if v != "object"})


def level_pool_parameters(
    facts: pd.DataFrame, freeboard_m: float = DEFAULT_FREEBOARD_M
) -> pd.DataFrame:
    """``lakes.parquet`` rows (docs/data_formats.md) derived from checked facts (module doc)."""
    area_m2 = facts["surface_area_km2"] * 1e6
    crest = facts["spillway_crest_m"]
    outlet = crest - facts["usable_capacity_m3"] / area_m2
    head = crest - outlet
    orifice_area = facts["full_release_m3s"] / (
        NWM_ORIFICE_COEFFICIENT * np.sqrt(2.0 * GRAVITY * head)
    )
    return pd.DataFrame(
        {
            "lake_id": facts["lake_id"],
            "reach_id": facts["reach_id"],
            "area_km2": facts["surface_area_km2"],
            "max_elevation": crest + freeboard_m,
            "weir_elevation": crest,
            "weir_coefficient": NWM_WEIR_COEFFICIENT,
            "weir_length": facts["spillway_length_m"],
            "dam_length": facts["dam_length_m"],
            "orifice_elevation": outlet,
            "orifice_coefficient": NWM_ORIFICE_COEFFICIENT,
            "orifice_area": orifice_area,
            "initial_elevation": outlet + facts["initial_fill"] * head,
            "name": facts["name"],
            "source": facts["source"],
        }
    )


def convert_reservoirs(facts_path: Path, dataset: Path, freeboard_m: float) -> pd.DataFrame:
    """Derive the lakes of ``facts_path`` and write ``<dataset>/lakes.parquet`` atomically.

    Raises ``KeyError`` naming a ``reach_id`` that is not a reach of the dataset.
    """
    lakes = level_pool_parameters(read_facts(facts_path), freeboard_m)
    reach_ids = pd.read_parquet(dataset / "reaches.parquet", columns=["id"])["id"]
    unknown = sorted(set(lakes["reach_id"]) - set(reach_ids))
    if unknown:
        raise KeyError(f"{facts_path}: reach_id {unknown} not in {dataset / 'reaches.parquet'}")
    with atomic_path(dataset / "lakes.parquet") as tmp:
        lakes.to_parquet(tmp, index=False)
    return lakes
