"""The one input schema of ddr_pipeline: names, dtypes, units and validators.

Every geodataset is converted into one folder holding ``reaches.parquet``, ``gauges.parquet``,
``attributes.parquet`` (optionally ``lakes.parquet``) and the zarr stores ``lateral_inflow.zarr``, ``observations.zarr``,
``forcings.zarr`` (and optionally ``reference_outflow.zarr``); see ``docs/data_formats.md``.

The validators are pure functions: they return a validated (and lightly cleaned) copy of their input
or raise ``KeyError`` (something missing) / ``ValueError`` (something wrong) with a message that
names the offending ids, columns, variables or dates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline.data import units

logger = logging.getLogger(__name__)

# --- file names ----------------------------------------------------------------------------------
REACHES_FILE = "reaches.parquet"
GAUGES_FILE = "gauges.parquet"
ATTRIBUTES_FILE = "attributes.parquet"
LATERAL_INFLOW_STORE = "lateral_inflow.zarr"
OBSERVATIONS_STORE = "observations.zarr"
FORCINGS_STORE = "forcings.zarr"
REFERENCE_STORE = "reference_outflow.zarr"
LAKES_FILE = "lakes.parquet"
#: Optional hourly companions of the daily stores (a short NWM case has no whole day): same
#: variables and dims, a regular hourly ``time`` stamped at the END of each hour (NWM valid time).
LATERAL_INFLOW_HOURLY_STORE = "lateral_inflow_hourly.zarr"
REFERENCE_HOURLY_STORE = "reference_outflow_hourly.zarr"
OBSERVATIONS_HOURLY_STORE = "observations_hourly.zarr"
SECONDS_PER_HOUR = 3600

# --- dimensions and variables --------------------------------------------------------------------
DIVIDE_DIM = "divide_id"
GAGE_DIM = "gage_id"
TIME_DIM = "time"
LATERAL_INFLOW_VAR = "Qr"
STREAMFLOW_VAR = "streamflow"
REFERENCE_VAR = "outflow"
FORCING_VARS: tuple[str, ...] = ("P", "PET", "Temp")

# --- table columns -------------------------------------------------------------------------------
ID_COL = "id"
TO_ID_COL = "to_id"
REACH_REQUIRED: dict[str, str] = {
    "id": "int64",
    "to_id": "int64",
    "length_m": "float64",
    "slope": "float64",
    "x": "float64",
}
REACH_OPTIONAL_FLOAT: tuple[str, ...] = ("top_width", "side_slope", "mann_n")
#: Known values of the optional reach columns must be finite and pass these rules (NaN = unknown).
REACH_OPTIONAL_RULES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "top_width": ("> 0", lambda v: v > 0),
    "side_slope": (">= 0", lambda v: v >= 0),
    "mann_n": ("> 0", lambda v: v > 0),
}
STAID_COL = "STAID"
REACH_IDS_COL = "reach_ids"
GAUGE_FLOAT_COLS: tuple[str, ...] = ("drain_sqkm", "lat", "lon")
GAUGE_REQUIRED: tuple[str, ...] = (STAID_COL, REACH_IDS_COL, *GAUGE_FLOAT_COLS)
#: Optional gauge column: factor in (0, 1] applied to the gauge reaches' lateral inflow (NaN = 1).
FLOW_SCALE_COL = "flow_scale"

# --- lakes (optional ``lakes.parquet``: NWM level-pool lakes, one per outlet reach) --------------
LAKE_ID_COL = "lake_id"
LAKE_REACH_COL = "reach_id"
#: The level-pool parameters, named as the routing engine names them (NWM LAKEPARM name in the
#: comment). Elevations are metres above the same datum, consistent within a lake.
LAKE_PARAMS: tuple[str, ...] = (
    "area_km2",  # LkArea, km2
    "max_elevation",  # LkMxE, m
    "weir_elevation",  # WeirE, m
    "weir_coefficient",  # WeirC, 1
    "weir_length",  # WeirL, m
    "dam_length",  # Dam_Length, m
    "orifice_elevation",  # OrificeE, m
    "orifice_coefficient",  # OrificeC, 1
    "orifice_area",  # OrificeA, m2
    "withdrawal",  # not NWM's: water taken out of the network from the pool, m3 s-1 (optional)
)
WITHDRAWAL_COL = "withdrawal"
#: Optional lake parameters and the value an absent column or a NaN takes (0: no withdrawal,
#: docs/routing.md, *Level-pool lakes and reservoirs*).
LAKE_OPTIONAL_PARAMS: dict[str, float] = {WITHDRAWAL_COL: 0.0}
INITIAL_ELEVATION_COL = "initial_elevation"
LAKE_FLOAT_COLS: tuple[str, ...] = (*LAKE_PARAMS, INITIAL_ELEVATION_COL)
LAKE_REQUIRED: tuple[str, ...] = (
    LAKE_ID_COL,
    LAKE_REACH_COL,
    *(c for c in LAKE_FLOAT_COLS if c not in LAKE_OPTIONAL_PARAMS),
)
LAKE_OPTIONAL_STR: tuple[str, ...] = ("name", "source")
#: NWM LAKEPARM variable of each lake column (``initial_elevation`` comes from ``ifd``).
NWM_LAKEPARM_NAMES: dict[str, str] = {
    LAKE_ID_COL: "lake_id",
    "area_km2": "LkArea",
    "max_elevation": "LkMxE",
    "weir_elevation": "WeirE",
    "weir_coefficient": "WeirC",
    "weir_length": "WeirL",
    "dam_length": "Dam_Length",
    "orifice_elevation": "OrificeE",
    "orifice_coefficient": "OrificeC",
    "orifice_area": "OrificeA",
}
#: The values NWM v2.1's LAKEPARM gives lakes without surveyed outlets (WeirC 0.4, WeirL 10 m,
#: Dam_Length 10 m, OrificeC 0.1, OrificeA 1 m2, ifd 0.9). Used only when a caller turns the
#: fallback on (``nwm_defaults=True``); elevations and areas are never defaulted.
NWM_LAKE_DEFAULTS: dict[str, float] = {
    "weir_coefficient": 0.4,
    "weir_length": 10.0,
    "dam_length": 10.0,
    "orifice_coefficient": 0.1,
    "orifice_area": 1.0,
}
NWM_DEFAULT_IFD = 0.9
#: ``initial_elevation`` must lie within this many active depths (max_elevation -
#: orifice_elevation, at least 1 m) of [orifice_elevation, max_elevation]: a lake may start below
#: its orifice (no outflow) or above its crest (a flood restart), but a value further off is a unit
#: or column mix-up (feet, a fraction, a depth instead of an elevation).
LAKE_ELEVATION_MARGIN = 1.0
LAKE_MIN_ACTIVE_DEPTH_M = 1.0

# --- units (the ``units`` attribute written on each variable) ------------------------------------
UNITS: dict[str, str] = {
    LATERAL_INFLOW_VAR: "m3 s-1",
    STREAMFLOW_VAR: "m3 s-1",
    REFERENCE_VAR: "m3 s-1",
    "P": "mm day-1",
    "PET": "mm day-1",
    "Temp": "degC",
    "length_m": "m",
    "slope": "m m-1",
    "x": "1",
    "top_width": "m",
    "side_slope": "1 (H:V)",
    "mann_n": "s m-1/3",
    "drain_sqkm": "km2",
    "area_km2": "km2",
    "max_elevation": "m",
    "weir_elevation": "m",
    "weir_coefficient": "1",
    "weir_length": "m",
    "dam_length": "m",
    "orifice_elevation": "m",
    "orifice_coefficient": "1",
    "orifice_area": "m2",
    "withdrawal": "m3 s-1",
    "initial_elevation": "m",
}

X_MAX = 0.5
STAID_LENGTH = 8  # USGS site numbers have 8 to 15 digits; shorter numeric ids are zero-padded
_STAID_RE = re.compile(r"^\d{8,15}$")
MAX_LISTED = 10  # how many offending ids/dates an error message lists


def format_values(values: Iterable[object], limit: int = MAX_LISTED) -> str:
    """Format offending values for an error message (the first ``limit``, then a count)."""
    items = list(values)
    head = ", ".join(str(v) for v in items[:limit])
    if len(items) > limit:
        return f"[{head}, ... ({len(items)} in all)]"
    return f"[{head}]"


def as_str_array(values: np.ndarray) -> np.ndarray:
    """Fixed-width unicode copy of ``values``, whatever their dtype.

    zarr v3 loads strings as numpy ``StringDType`` (or ``object``), which ``astype(str)`` cannot
    always cast; going through Python strings works for every string, bytes or number dtype.
    """
    items = np.asarray(values).tolist()
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in items], dtype=str)


def _format_dates(times: np.ndarray) -> str:
    """Format datetime64 values as ISO dates."""
    return format_values(np.datetime_as_string(np.unique(times), unit="D"))


def _require_columns(df: pd.DataFrame, columns: Iterable[str], table: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{table}: missing required column(s) {missing}; has {list(df.columns)}")


def _as_dtype(df: pd.DataFrame, column: str, dtype: str, table: str) -> pd.Series:
    """Cast one column, raising a ValueError naming the column when it cannot be cast."""
    try:
        return df[column].astype(dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{table}: column {column!r} cannot be cast to {dtype}: {exc}") from exc


def _check_unique(ids: pd.Series, table: str, column: str) -> None:
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise ValueError(f"{table}: duplicate {column} values {format_values(dup)}")


def _check_bad(df: pd.DataFrame, bad: np.ndarray, what: str, id_col: str, table: str) -> None:
    if bad.any():
        bad_ids = format_values(df.loc[bad, id_col].tolist())
        raise ValueError(f"{table}: {what} for {id_col} {bad_ids}")


# --- tables --------------------------------------------------------------------------------------
def validate_reaches(reaches: pd.DataFrame) -> pd.DataFrame:
    """Validate the reaches table and return a cleaned copy.

    Checks required columns and dtypes, unique positive ids, ``length_m > 0``, ``slope >= 0``,
    ``0 <= x <= 0.5``. A missing ``to_id`` or one that points to an id not in the table marks an
    outlet: such values are logged (with the ids) and normalised to ``0``. Topology (self-loops,
    cycles) is checked by :mod:`ddr_pipeline.network`.
    """
    table = "reaches"
    _require_columns(reaches, REACH_REQUIRED, table)
    out = reaches.copy()
    to_id = pd.to_numeric(out[TO_ID_COL], errors="raise").fillna(0)
    out[TO_ID_COL] = to_id
    for col, dtype in REACH_REQUIRED.items():
        out[col] = _as_dtype(out, col, dtype, table)
    for col in REACH_OPTIONAL_FLOAT:
        if col in out.columns:
            out[col] = _as_dtype(out, col, "float64", table)
    _check_unique(out[ID_COL], table, ID_COL)
    _check_bad(out, out[ID_COL].to_numpy() <= 0, "id must be > 0", ID_COL, table)
    length = out["length_m"].to_numpy()
    _check_bad(out, ~(np.isfinite(length) & (length > 0)), "length_m must be > 0", ID_COL, table)
    slope = out["slope"].to_numpy()
    _check_bad(out, ~(np.isfinite(slope) & (slope >= 0)), "slope must be >= 0", ID_COL, table)
    x = out["x"].to_numpy()
    _check_bad(out, ~((x >= 0) & (x <= X_MAX)), f"x must be in [0, {X_MAX}]", ID_COL, table)
    for col, (rule, holds) in REACH_OPTIONAL_RULES.items():
        if col in out.columns:
            v = out[col].to_numpy()
            bad = ~np.isnan(v) & ~(np.isfinite(v) & holds(v))
            _check_bad(out, bad, f"{col} must be finite and {rule} (NaN = unknown)", ID_COL, table)
    dangling = (out[TO_ID_COL] != 0) & ~out[TO_ID_COL].isin(out[ID_COL])
    if dangling.any():
        logger.warning(
            "reaches: to_id points outside the table for id %s (to_id %s): treated as outlets "
            "(to_id set to 0)",
            format_values(out.loc[dangling, ID_COL].tolist()),
            format_values(out.loc[dangling, TO_ID_COL].tolist()),
        )
        out.loc[dangling, TO_ID_COL] = 0
    return out


def normalize_staid(values: pd.Series) -> pd.Series:
    """Return STAIDs as 8-character strings, zero-padding purely numeric shorter ones."""
    as_str = values.astype("string").str.strip()
    numeric = as_str.str.fullmatch(r"\d{1,8}").fillna(False)
    return as_str.where(~numeric, as_str.str.zfill(STAID_LENGTH))


def _reach_id_lists(values: pd.Series) -> pd.Series:
    """Coerce each entry of a reach-id column to a list of Python ints."""

    def to_list(v: object) -> list[int]:
        arr = np.atleast_1d(np.asarray(v))
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            arr = arr.astype("float64")
            if not np.all(arr == np.round(arr)):
                raise ValueError(f"gauges: reach_ids entry {v!r} holds non-integer values")
        return [int(i) for i in arr]

    return pd.Series([to_list(v) for v in values], index=values.index, dtype=object)


def _flow_scale(gauges: pd.DataFrame) -> pd.Series:
    """The ``flow_scale`` column as float64 with NaN -> 1; values outside (0, 1] raise."""
    scale = pd.to_numeric(gauges[FLOW_SCALE_COL], errors="coerce").astype("float64")
    unparsable = scale.isna() & gauges[FLOW_SCALE_COL].notna()
    scale = scale.fillna(1.0)
    values = scale.to_numpy()
    bad = unparsable.to_numpy(dtype=bool) | ~((values > 0) & (values <= 1))
    if bad.any():
        raise ValueError(
            f"gauges: {FLOW_SCALE_COL} must be a number in (0, 1] (NaN = 1) for STAID "
            f"{format_values(gauges.loc[bad, STAID_COL].tolist())}: got "
            f"{format_values(gauges.loc[bad, FLOW_SCALE_COL].tolist())}"
        )
    return scale


def validate_gauges(gauges: pd.DataFrame, reach_ids: Sequence[int] | np.ndarray) -> pd.DataFrame:
    """Validate the gauges table against the known reach ids; return a cleaned copy.

    ``STAID`` becomes a string of 8 to 15 digits (numeric ids shorter than 8 are zero-padded;
    unique); ``reach_ids`` a non-empty list of
    ints that all exist in ``reach_ids`` (else ``KeyError`` naming the gauges and reach ids).
    An optional ``flow_scale`` column becomes float64 in ``(0, 1]`` (NaN -> 1; other values raise
    ``ValueError`` naming the gauges).
    """
    table = "gauges"
    _require_columns(gauges, GAUGE_REQUIRED, table)
    out = gauges.copy()
    out[STAID_COL] = normalize_staid(out[STAID_COL])
    bad = ~out[STAID_COL].str.fullmatch(_STAID_RE.pattern).fillna(False).to_numpy(dtype=bool)
    if bad.any():
        raise ValueError(
            f"gauges: STAID must be 8 to 15 digits, got {format_values(out.loc[bad, STAID_COL])}"
        )
    out[STAID_COL] = out[STAID_COL].astype(str)
    _check_unique(out[STAID_COL], table, STAID_COL)
    for col in GAUGE_FLOAT_COLS:
        out[col] = _as_dtype(out, col, "float64", table)
    if FLOW_SCALE_COL in out.columns:
        out[FLOW_SCALE_COL] = _flow_scale(out)
    out[REACH_IDS_COL] = _reach_id_lists(out[REACH_IDS_COL])
    empty = out[REACH_IDS_COL].map(len).to_numpy() == 0
    _check_bad(out, empty, "reach_ids is empty", STAID_COL, table)
    exploded = out[[STAID_COL, REACH_IDS_COL]].explode(REACH_IDS_COL)
    unknown = ~exploded[REACH_IDS_COL].astype("int64").isin(np.asarray(reach_ids, dtype=np.int64))
    if unknown.any():
        bad_rows = exploded[unknown]
        raise KeyError(
            f"gauges: reach_ids not in the reaches table for STAID "
            f"{format_values(bad_rows[STAID_COL].unique())}: unknown reach ids "
            f"{format_values(bad_rows[REACH_IDS_COL].unique())}"
        )
    return out


def validate_attributes(
    attributes: pd.DataFrame, reach_ids: Sequence[int] | np.ndarray, required: Sequence[str]
) -> pd.DataFrame:
    """Validate the attributes table; return ``id`` + ``required`` columns (float64).

    Rows are returned in the order of ``reach_ids``; extra reaches are dropped. Missing columns or
    reaches raise ``KeyError`` naming them; duplicate ids and infinite values raise ``ValueError``.
    NaN is allowed (filled downstream by the normalisation).
    """
    table = "attributes"
    _require_columns(attributes, [ID_COL, *required], table)
    ids = _as_dtype(attributes, ID_COL, "int64", table)
    _check_unique(ids, table, ID_COL)
    wanted = np.asarray(reach_ids, dtype=np.int64)
    missing = np.setdiff1d(wanted, ids.to_numpy())
    if missing.size:
        raise KeyError(f"attributes: no row for reach id(s) {format_values(missing)}")
    values = pd.DataFrame({c: _as_dtype(attributes, c, "float64", table) for c in required})
    values.insert(0, ID_COL, ids)
    out = values.set_index(ID_COL).loc[wanted].reset_index()
    inf_cols = [c for c in required if np.isinf(out[c].to_numpy()).any()]
    if inf_cols:
        raise ValueError(f"attributes: infinite values in column(s) {inf_cols}")
    return out


def initial_elevation_from_ifd(
    orifice_elevation: np.ndarray, max_elevation: np.ndarray, ifd: np.ndarray | float
) -> np.ndarray:
    """NWM's starting water elevation (m) from the initial fractional depth ``ifd``.

    WRF-Hydro's ``module_RT`` and t-route's level-pool hybrid state
    (``module_persistence_levelpool_hybrid_state.F``) start a lake at
    ``OrificeE + ifd * (LkMxE - OrificeE)``: ``ifd`` is the fraction of the active depth between
    the orifice and the maximum elevation.
    """
    orifice = np.asarray(orifice_elevation, dtype=np.float64)
    return orifice + np.asarray(ifd, dtype=np.float64) * (np.asarray(max_elevation) - orifice)


def _lake_defaults(out: pd.DataFrame, nwm_defaults: bool) -> None:
    """Fill missing coefficients/lengths with NWM's defaults (only when asked; logged) in place."""
    if not nwm_defaults:
        return
    for col, value in NWM_LAKE_DEFAULTS.items():
        nan = out[col].isna().to_numpy()
        if nan.any():
            logger.warning(
                "lakes: %s missing for lake_id %s: using NWM's default %s",
                col,
                format_values(out.loc[nan, LAKE_ID_COL].tolist()),
                value,
            )
            out.loc[nan, col] = value
    nan = out[INITIAL_ELEVATION_COL].isna().to_numpy()
    if nan.any():
        logger.warning(
            "lakes: initial_elevation missing for lake_id %s: using NWM's default ifd %s",
            format_values(out.loc[nan, LAKE_ID_COL].tolist()),
            NWM_DEFAULT_IFD,
        )
        start = initial_elevation_from_ifd(
            out["orifice_elevation"], out["max_elevation"], NWM_DEFAULT_IFD
        )
        out.loc[nan, INITIAL_ELEVATION_COL] = start[nan]


def _check_lake_values(out: pd.DataFrame) -> None:
    """Finite parameters, positive area, non-negative sizes, ordered elevations."""
    table, key = "lakes", LAKE_ID_COL
    defaultable = (*NWM_LAKE_DEFAULTS, INITIAL_ELEVATION_COL)
    for col in LAKE_FLOAT_COLS:
        finite = np.isfinite(out[col].to_numpy())
        hint = " (nwm_defaults=True fills it with NWM's default)" if col in defaultable else ""
        _check_bad(out, ~finite, f"column {col!r} must be finite{hint}", key, table)
    _check_bad(out, out["area_km2"].to_numpy() <= 0, "column 'area_km2' must be > 0", key, table)
    for col in (*NWM_LAKE_DEFAULTS, *LAKE_OPTIONAL_PARAMS):  # coefficients, lengths, orifice area
        _check_bad(out, out[col].to_numpy() < 0, f"column {col!r} must be >= 0", key, table)
    top = out["max_elevation"].to_numpy()
    for col in ("weir_elevation", "orifice_elevation"):
        above = out[col].to_numpy() > top
        _check_bad(out, above, f"column {col!r} must be <= max_elevation", key, table)
    orifice = out["orifice_elevation"].to_numpy()
    margin = LAKE_ELEVATION_MARGIN * np.maximum(top - orifice, LAKE_MIN_ACTIVE_DEPTH_M)
    start = out[INITIAL_ELEVATION_COL].to_numpy()
    outside = (start < orifice - margin) | (start > top + margin)
    what = (
        "column 'initial_elevation' must lie within one active depth (max_elevation - "
        "orifice_elevation, at least 1 m) of [orifice_elevation, max_elevation]"
    )
    _check_bad(out, outside, what, key, table)


def validate_lakes(
    lakes: pd.DataFrame, reach_ids: Sequence[int] | np.ndarray, *, nwm_defaults: bool = False
) -> pd.DataFrame:
    """Validate the optional lakes table against the known reach ids; return a cleaned copy.

    ``lake_id`` and ``reach_id`` become unique int64 (one lake per reach; every ``reach_id`` an
    ``id`` of the reaches table, else ``KeyError`` naming the lakes and reaches); the parameters of
    :data:`LAKE_PARAMS` and ``initial_elevation`` float64 and finite, ``area_km2 > 0``,
    coefficients, lengths and ``orifice_area >= 0``, ``weir_elevation`` and
    ``orifice_elevation <= max_elevation``, ``initial_elevation`` within one active depth of
    [orifice_elevation, max_elevation] (see :data:`LAKE_ELEVATION_MARGIN`). A missing (NaN)
    parameter is an error naming the lake and column: a lake is never routed as a channel by
    accident. With ``nwm_defaults=True`` missing coefficients, lengths and orifice areas take
    :data:`NWM_LAKE_DEFAULTS` and a missing ``initial_elevation`` NWM's ``ifd`` of 0.9 (logged
    with the lake ids); missing areas and elevations stay errors. Optional ``name`` and
    ``source`` become str; other columns are kept. Optional ``withdrawal`` (m³/s, >= 0; water
    taken out of the network, e.g. a city's diversion): an absent column or a NaN is 0.
    """
    table = "lakes"
    _require_columns(lakes, LAKE_REQUIRED, table)
    out = lakes.copy()
    for col, value in LAKE_OPTIONAL_PARAMS.items():
        out[col] = _as_dtype(out, col, "float64", table).fillna(value) if col in out else value
    for col in (LAKE_ID_COL, LAKE_REACH_COL):
        if out[col].isna().any():
            raise ValueError(f"{table}: column {col!r} has missing values")
        out[col] = _as_dtype(out, col, "int64", table)
    for col in LAKE_FLOAT_COLS:
        out[col] = _as_dtype(out, col, "float64", table)
    for col in LAKE_OPTIONAL_STR:
        if col in out.columns:
            out[col] = out[col].astype("string").fillna("").astype(str)
    _check_unique(out[LAKE_ID_COL], table, LAKE_ID_COL)
    _check_unique(out[LAKE_REACH_COL], table, LAKE_REACH_COL)
    unknown = ~out[LAKE_REACH_COL].isin(np.asarray(reach_ids, dtype=np.int64)).to_numpy()
    if unknown.any():
        raise KeyError(
            f"{table}: reach_id not in the reaches table for lake_id "
            f"{format_values(out.loc[unknown, LAKE_ID_COL].tolist())}: unknown reach ids "
            f"{format_values(out.loc[unknown, LAKE_REACH_COL].tolist())}"
        )
    _lake_defaults(out, nwm_defaults)
    _check_lake_values(out)
    return out.reset_index(drop=True)


# --- stores --------------------------------------------------------------------------------------
def _check_time(ds: xr.Dataset, name: str) -> None:
    """Require a unique, increasing, daily datetime64 ``time`` coordinate at 00:00."""
    if TIME_DIM not in ds.coords:
        raise KeyError(f"{name}: missing coordinate {TIME_DIM!r}")
    t = ds[TIME_DIM].to_numpy()
    if not np.issubdtype(t.dtype, np.datetime64):
        raise ValueError(f"{name}: {TIME_DIM!r} must be datetime64, got {t.dtype}")
    not_midnight = t != t.astype("datetime64[D]")
    if not_midnight.any():
        raise ValueError(f"{name}: times not at 00:00: {format_values(t[not_midnight])}")
    steps = np.diff(t.astype("datetime64[D]").astype(np.int64))
    if (steps <= 0).any():
        raise ValueError(
            f"{name}: time not strictly increasing at {_format_dates(t[1:][steps <= 0])}"
        )
    if (steps > 1).any():
        days = t.astype("datetime64[D]")
        missing = np.setdiff1d(np.arange(days[0], days[-1] + 1), days)
        raise ValueError(
            f"{name}: time is not daily, missing days {_format_dates(missing)}; store one step "
            "per day (NaN where a value is missing)"
        )


def _check_float(da: xr.DataArray, name: str) -> None:
    """Require a floating-point variable (strings, ints, bools and objects are format errors)."""
    if da.dtype.kind != "f":
        raise ValueError(
            f"{name}: variable {da.name!r} has dtype {da.dtype}, expected a floating-point type"
        )


def _check_vars(ds: xr.Dataset, variables: Iterable[str], dims: tuple[str, str], name: str) -> None:
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise KeyError(f"{name}: missing variable(s) {missing}; has {list(ds.data_vars)}")
    for v in variables:
        if set(ds[v].dims) != set(dims):
            raise ValueError(f"{name}: variable {v!r} has dims {ds[v].dims}, expected {dims}")
        _check_float(ds[v], name)


def _select_ids(ds: xr.Dataset, dim: str, wanted: np.ndarray, name: str) -> xr.Dataset:
    """Select ``wanted`` along ``dim`` (in that order), naming the ids the store lacks."""
    have = ds[dim].to_numpy()
    if len(np.unique(have)) != len(have):
        dup = pd.Series(have)[pd.Series(have).duplicated()].unique()
        raise ValueError(f"{name}: duplicate {dim} values {format_values(dup)}")
    missing = np.setdiff1d(wanted, have)
    if missing.size:
        raise KeyError(f"{name}: no data for {dim} {format_values(missing)}")
    return ds.sel({dim: wanted})


def _locate(da: xr.DataArray, mask: np.ndarray, dim: str) -> tuple[np.ndarray, np.ndarray]:
    """Ids and dates of the True cells of ``mask`` (laid out like ``da``)."""
    idx = np.nonzero(mask)
    axis_id = da.dims.index(dim)
    axis_t = da.dims.index(TIME_DIM)
    return da[dim].to_numpy()[idx[axis_id]], da[TIME_DIM].to_numpy()[idx[axis_t]]


def _check_cells(da: xr.DataArray, bad: np.ndarray, dim: str, what: str, name: str) -> None:
    """Raise ``ValueError`` naming the ``dim`` ids and dates of the True cells of ``bad``."""
    if bad.any():
        ids, dates = _locate(da, bad, dim)
        raise ValueError(
            f"{name}: {what} for {dim} {format_values(np.unique(ids))} on {_format_dates(dates)}"
        )


def _in_schema_units(
    da: xr.DataArray, store: str, area_km2: Sequence[float] | np.ndarray | None = None
) -> xr.DataArray:
    """``da`` in the schema's units (:data:`UNITS`; converted and logged when it is not)."""
    area = None if area_km2 is None else np.asarray(area_km2, dtype=np.float64)
    return units.to_schema_units(da, UNITS[str(da.name)], store, area)


def validate_lateral_inflow(
    ds: xr.Dataset,
    reach_ids: Sequence[int] | np.ndarray,
    nan_fill: float | None,
    *,
    max_nan_fraction_per_reach: float = 1.0,
    max_nan_fraction: float = 1.0,
) -> tuple[xr.Dataset, int]:
    """Validate ``Qr(divide_id, time)``; return (dataset ordered like ``reach_ids``, n NaN filled).

    Negative or infinite values raise ``ValueError`` naming divide ids and dates. NaN values are
    replaced by ``nan_fill`` (count logged) or raise ``ValueError`` when ``nan_fill`` is None.
    Filling is refused (``ValueError`` naming the divides) when more than
    ``max_nan_fraction_per_reach`` of one divide's days or ``max_nan_fraction`` of all values are
    NaN: a lost chunk reads as NaN and must not silently become ``nan_fill``.
    """
    name = LATERAL_INFLOW_STORE
    _check_vars(ds, [LATERAL_INFLOW_VAR], (DIVIDE_DIM, TIME_DIM), name)
    _check_time(ds, name)
    out = _select_ids(ds[[LATERAL_INFLOW_VAR]], DIVIDE_DIM, np.asarray(reach_ids, np.int64), name)
    out[LATERAL_INFLOW_VAR] = _in_schema_units(out[LATERAL_INFLOW_VAR], name)
    qr = out[LATERAL_INFLOW_VAR].transpose(DIVIDE_DIM, TIME_DIM)
    values = qr.to_numpy()
    _check_cells(qr, values < 0, DIVIDE_DIM, f"negative {LATERAL_INFLOW_VAR}", name)
    _check_cells(qr, np.isinf(values), DIVIDE_DIM, f"infinite {LATERAL_INFLOW_VAR}", name)
    nan = np.isnan(values)
    n_filled = int(nan.sum())
    if n_filled:
        ids, dates = _locate(qr, nan, DIVIDE_DIM)
        where = f"for divide_id {format_values(np.unique(ids))} on {_format_dates(dates)}"
        if nan_fill is None:
            raise ValueError(
                f"{name}: {n_filled} NaN values in {LATERAL_INFLOW_VAR} {where} "
                "and no nan_fill configured"
            )
        _check_nan_ceiling(qr, nan, max_nan_fraction_per_reach, max_nan_fraction, name)
        logger.warning(
            "%s: filled %d NaN values of %s with %s %s",
            name,
            n_filled,
            LATERAL_INFLOW_VAR,
            nan_fill,
            where,
        )
        out[LATERAL_INFLOW_VAR] = out[LATERAL_INFLOW_VAR].fillna(nan_fill)
    return out, n_filled


def _check_nan_ceiling(
    da: xr.DataArray, nan: np.ndarray, per_reach: float, overall: float, name: str
) -> None:
    """Refuse to fill NaN above ``per_reach`` (fraction of one divide's days) or ``overall``."""
    per_row = nan.mean(axis=1)
    too_many = per_row > per_reach
    if too_many.any():
        ids = da[DIVIDE_DIM].to_numpy()[too_many]
        raise ValueError(
            f"{name}: {LATERAL_INFLOW_VAR} is NaN on more than {per_reach:.1%} of the days for "
            f"divide_id {format_values(ids)} (up to {per_row.max():.1%}); a lost or unreadable "
            "chunk reads as NaN. Repair the store or raise "
            "lateral_inflow.max_nan_fraction_per_reach"
        )
    fraction = float(nan.mean())
    if fraction > overall:
        raise ValueError(
            f"{name}: {fraction:.2%} of all {LATERAL_INFLOW_VAR} values are NaN, more than "
            f"{overall:.2%}; repair the store or raise lateral_inflow.max_nan_fraction"
        )


def validate_observations(
    ds: xr.Dataset,
    gauge_ids: Sequence[str],
    drain_sqkm: Sequence[float] | np.ndarray | None = None,
) -> xr.Dataset:
    """Validate ``streamflow(gage_id, time)`` (NaN = missing); return it ordered like ``gauge_ids``.

    Missing gauges raise ``KeyError``; negative or infinite discharge raises ``ValueError``
    naming gauges and dates. Units are checked (:func:`ddr_pipeline.data.units.to_schema_units`):
    ft3/s is converted, a daily depth (mm/day) too with the gauges' ``drain_sqkm``.
    """
    name = OBSERVATIONS_STORE
    _check_vars(ds, [STREAMFLOW_VAR], (GAGE_DIM, TIME_DIM), name)
    _check_time(ds, name)
    ds = ds.assign_coords({GAGE_DIM: as_str_array(ds[GAGE_DIM].to_numpy())})
    wanted = np.asarray([str(g) for g in gauge_ids])
    out = _select_ids(ds[[STREAMFLOW_VAR]], GAGE_DIM, wanted, name)
    out[STREAMFLOW_VAR] = _in_schema_units(out[STREAMFLOW_VAR], name, drain_sqkm)
    q = out[STREAMFLOW_VAR]
    _check_cells(q, q.to_numpy() < 0, GAGE_DIM, f"negative {STREAMFLOW_VAR}", name)
    _check_cells(q, np.isinf(q.to_numpy()), GAGE_DIM, f"infinite {STREAMFLOW_VAR}", name)
    return out


def validate_forcings(
    ds: xr.Dataset, reach_ids: Sequence[int] | np.ndarray, variables: Sequence[str]
) -> xr.Dataset:
    """Validate forcing variables ``(divide_id, time)``; return them ordered like ``reach_ids``.

    Missing variables or divides raise ``KeyError``; NaN or infinite values raise ``ValueError``
    naming the variable, divide ids and dates.
    """
    name = FORCINGS_STORE
    _check_vars(ds, variables, (DIVIDE_DIM, TIME_DIM), name)
    _check_time(ds, name)
    out = _select_ids(ds[list(variables)], DIVIDE_DIM, np.asarray(reach_ids, np.int64), name)
    for v in variables:
        if v in UNITS:
            out[v] = _in_schema_units(out[v], name)
        values = out[v].to_numpy()
        _check_cells(out[v], np.isnan(values), DIVIDE_DIM, f"NaN in {v!r}", name)
        _check_cells(out[v], np.isinf(values), DIVIDE_DIM, f"infinite value in {v!r}", name)
    return out


def validate_hourly(
    ds: xr.Dataset, variable: str, ids: Sequence[object] | np.ndarray, dim: str, name: str
) -> xr.Dataset:
    """Validate an hourly companion store (``*_hourly.zarr``); return it ordered like ``ids``.

    ``variable`` must be floating point over ``(dim, time)`` with a strictly increasing, regular
    hourly ``time``; missing ids raise ``KeyError``; negative or infinite values ``ValueError``
    naming ids and dates. NaN is kept (a missing value).
    """
    _check_vars(ds, [variable], (dim, TIME_DIM), name)
    t = ds[TIME_DIM].to_numpy()
    if not np.issubdtype(t.dtype, np.datetime64):
        raise ValueError(f"{name}: {TIME_DIM!r} must be datetime64, got {t.dtype}")
    steps = np.diff(t.astype("datetime64[s]").astype(np.int64))
    if (steps != SECONDS_PER_HOUR).any():
        bad = t[1:][steps != SECONDS_PER_HOUR]
        raise ValueError(
            f"{name}: time is not a regular hourly series at {format_values(bad.astype(str))}"
        )
    out = _select_ids(ds[[variable]], dim, np.asarray(ids), name)
    da = out[variable]
    values = da.to_numpy()
    _check_cells(da, values < 0, dim, f"negative {variable}", name)
    _check_cells(da, np.isinf(values), dim, f"infinite {variable}", name)
    return out


def check_period(
    ds: xr.Dataset, start: str | np.datetime64, end: str | np.datetime64, name: str
) -> None:
    """Raise ``ValueError`` naming dates and store unless [start, end] is fully covered."""
    _check_time(ds, name)
    t0, t1 = np.datetime64(start, "D"), np.datetime64(end, "D")
    if t1 < t0:
        raise ValueError(f"{name}: period end {t1} is before start {t0}")
    times = ds[TIME_DIM].to_numpy().astype("datetime64[D]")
    if times.size == 0:
        raise ValueError(f"{name}: no time steps; requested {t0} .. {t1}")
    first, last = times[0], times[-1]
    if t0 < first or t1 > last:
        raise ValueError(
            f"{name}: requested period {t0} .. {t1} is outside the data ({first} .. {last})"
        )
    inside = times[(times >= t0) & (times <= t1)]
    expected = int((t1 - t0).astype(np.int64)) + 1
    if inside.size != expected:
        gaps = np.setdiff1d(np.arange(t0, t1 + 1), inside)
        raise ValueError(f"{name}: missing days in {t0} .. {t1}: {format_values(gaps.astype(str))}")
