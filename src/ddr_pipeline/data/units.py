"""Units of the input schema: synonyms, conversions to the schema's units, unit checks.

:data:`ddr_pipeline.data.schema.UNITS` names the unit of every variable. Stores carry a ``units``
attribute per variable; :func:`to_schema_units` compares it with the schema's, converts known
convertible units (ft3/s -> m3/s, degF/K -> degC, in/day -> mm/day, a daily depth in mm/day ->
m3/s with an area) and logs it, refuses anything else, and warns when the attribute is missing.
The ingest converters (:mod:`ddr_pipeline.ingest.stores`) use the same synonym table.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import xarray as xr

logger = logging.getLogger(__name__)

FT3_TO_M3 = 0.3048**3
#: mm/day over 1 km2 in m3/s: 1e-3 m * 1e6 m2 / 86400 s.
MM_DAY_KM2_TO_M3S = 1e3 / 86400.0

# Canonical unit -> {synonym: (scale, offset)}; value_out = value_in * scale + offset.
UNIT_SYNONYMS: dict[str, dict[str, tuple[float, float]]] = {
    "m3 s-1": {
        **{
            u: (1.0, 0.0)
            for u in (
                "m3 s-1",
                "m3/s",
                "m3s-1",
                "m3.s-1",
                "m3 s**-1",
                "cms",
                "cumecs",
                "m3 sec-1",
                "m3/sec",
                "cubic meters per second",
            )
        },
        **{
            u: (FT3_TO_M3, 0.0)
            for u in (
                "ft3 s-1",
                "ft3/s",
                "ft3s-1",
                "ft3.s-1",
                "cfs",
                "ft3/sec",
                "cubic feet per second",
            )
        },
    },
    "mm day-1": {
        **{
            u: (1.0, 0.0)
            for u in (
                "mm day-1",
                "mm/day",
                "mm d-1",
                "mm/d",
                "mm.day-1",
                "mm.d-1",
                "kg m-2 day-1",
                "kg m-2 d-1",
            )
        },
        **{u: (25.4, 0.0) for u in ("in day-1", "in/day", "inches/day", "inch/day", "in d-1")},
    },
    "degC": {
        **{
            u: (1.0, 0.0)
            for u in (
                "degc",
                "°c",
                "c",
                "celsius",
                "deg_c",
                "degrees_c",
                "degree_celsius",
                "degrees celsius",
            )
        },
        **{u: (1.0, -273.15) for u in ("k", "kelvin")},
        **{u: (5.0 / 9.0, -32.0 * 5.0 / 9.0) for u in ("degf", "°f", "f", "fahrenheit")},
    },
}

#: Canonical units that are a discharge (a daily depth converts to them with an area).
DISCHARGE_UNITS = "m3 s-1"
#: Canonical unit of a daily depth.
DEPTH_UNITS = "mm day-1"


class UnitsError(ValueError):
    """A variable whose ``units`` cannot be converted to the schema's (names store, variable)."""


def clean_units(units: str) -> str:
    """Lower-case ``units`` without ``**``/``^`` and with single spaces (synonym lookup key)."""
    text = units.strip().lower().replace("**", "").replace("^", "")
    return re.sub(r"\s+", " ", text)


def conversion(units: str, canonical: str) -> tuple[float, float] | None:
    """``(scale, offset)`` from ``units`` to ``canonical`` (None: not a known synonym)."""
    table = {clean_units(k): v for k, v in UNIT_SYNONYMS.get(canonical, {}).items()}
    return table.get(clean_units(str(units)))


def to_schema_units(
    da: xr.DataArray, canonical: str, store: str, area_km2: np.ndarray | None = None
) -> xr.DataArray:
    """``da`` in ``canonical`` units (attribute ``units`` set), converted if need be.

    A missing ``units`` attribute is taken as ``canonical`` with a warning. A daily depth
    (mm/day, in/day) becomes a discharge with ``area_km2`` (km2 per row of ``da``'s first
    dimension). Raises :class:`UnitsError` naming the store, variable and units otherwise.
    """
    units = da.attrs.get("units")
    if units is None:
        logger.warning(
            "%s: variable %r has no units attribute; assuming the schema's %s",
            store, da.name, canonical,
        )  # fmt: skip
        return da.assign_attrs(units=canonical)
    found = conversion(units, canonical)
    if found is None and canonical == DISCHARGE_UNITS:
        return _depth_to_discharge(da, units, store, area_km2)
    if found is None:
        raise UnitsError(
            f"{store}: variable {da.name!r} has units {units!r}; the schema expects {canonical} "
            f"(accepted: {', '.join(sorted(UNIT_SYNONYMS[canonical]))})"
        )
    scale, offset = found
    if (scale, offset) == (1.0, 0.0):
        return da.assign_attrs(units=canonical)
    logger.warning("%s: converting %r from %s to %s", store, da.name, units, canonical)
    return (da * scale + offset).astype(da.dtype).assign_attrs({**da.attrs, "units": canonical})


def _depth_to_discharge(
    da: xr.DataArray, units: str, store: str, area_km2: np.ndarray | None
) -> xr.DataArray:
    """A daily depth over ``area_km2`` as m3/s; :class:`UnitsError` if it is not a depth."""
    depth = conversion(units, DEPTH_UNITS)
    if depth is None:
        raise UnitsError(
            f"{store}: variable {da.name!r} has units {units!r}; the schema expects "
            f"{DISCHARGE_UNITS} (accepted: {', '.join(sorted(UNIT_SYNONYMS[DISCHARGE_UNITS]))}, "
            "or a daily depth such as mm/day where an area is known)"
        )
    if area_km2 is None:
        raise UnitsError(
            f"{store}: variable {da.name!r} is a depth ({units!r}) and no area is known to "
            "convert it to m3 s-1; convert the store with the ingest tools (--unit-area)"
        )
    areas = np.asarray(area_km2, dtype=np.float64)
    bad = ~(np.isfinite(areas) & (areas > 0))
    if bad.any():
        ids = da[da.dims[0]].to_numpy()[bad]
        raise UnitsError(
            f"{store}: variable {da.name!r} is a depth ({units!r}) but {da.dims[0]} "
            f"{ids[:10].tolist()} have no positive area to convert it with"
        )
    scale = depth[0] * MM_DAY_KM2_TO_M3S * areas
    logger.warning(
        "%s: converting %r from %s to %s with the areas (km2)", store, da.name, units,
        DISCHARGE_UNITS,
    )  # fmt: skip
    factor = xr.DataArray(scale, dims=da.dims[0], coords={da.dims[0]: da[da.dims[0]]})
    converted = (da * factor).astype(da.dtype)
    return converted.assign_attrs({**da.attrs, "units": DISCHARGE_UNITS})
