"""NOAA-OWP / Lynker hydrofabric v2.2 GeoPackage adapter -> the input schema.

A hydrofabric routes water flowpath -> nexus -> flowpath: a flowpath ``wb-N`` drains into the
nexus named by its ``toid`` (``nex-M``), and that nexus drains into the flowpath named by the
nexus ``toid``. This module resolves the indirection into reach -> reach links, where the reach
id is the numeric part of ``wb-N``. A nexus whose ``toid`` is missing, ``wb-0`` or a flowpath
outside the GeoPackage, and a terminal nexus (``tnx-``) absent from the nexus layer, are outlets.

Gauges sit on nexuses. A gauge found through the ``network`` layer (``hl_uri == "gages-<STAID>"``),
the nexus layer (``poi_type == "Gages"``) or ``rl_gages`` of the flowpath attributes is placed at
the nexus downstream of its flowpath, and its ``reach_ids`` are all flowpaths draining into that
nexus: the sum of their outflows is the discharge passing the gauge.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import shapely

from ddr_pipeline.data import io, lakes, schema
from ddr_pipeline.data.schema import normalize_staid

logger = logging.getLogger(__name__)

FLOWPATH_LAYERS = ("flowpaths",)
NEXUS_LAYERS = ("nexus",)
NETWORK_LAYERS = ("network",)
ATTRIBUTE_LAYERS = ("flowpath-attributes", "flowpath_attributes", "flowpath-attributes-ml")
DIVIDE_ATTRIBUTE_LAYERS = ("divide-attributes", "divide_attributes")

#: hydrofabric flowpath-attribute column -> schema column (first present wins for lengths).
CHANNEL_COLUMNS = {
    "So": "slope",
    "TopWdth": "top_width",
    "ChSlp": "side_slope",
    "n": "mann_n",
    "MusX": "x",
}
LENGTH_COLUMNS = ("Length_m", "length_m")
DIVIDE_COLUMNS = ("divide_id", "realized_catchment")
OUTLET = 0


class HydrofabricError(ValueError):
    """A hydrofabric input that cannot be converted (names the layer, column or ids)."""


@dataclass(frozen=True)
class FabricTables:
    """The schema tables produced by a geodataset adapter (see docs/architecture.md §1)."""

    reaches: gpd.GeoDataFrame
    gauges: pd.DataFrame
    attributes: pd.DataFrame | None = None
    lakes: pd.DataFrame | None = None

    def write(self, folder: str | Path) -> list[Path]:
        """Validate and write ``reaches``/``gauges``/``attributes``/``lakes`` (.parquet)."""
        root = Path(folder)
        reaches = gpd.GeoDataFrame(schema.validate_reaches(self.reaches), crs=self.reaches.crs)
        gauges = schema.validate_gauges(self.gauges, reaches["id"].to_numpy())
        paths = [root / schema.REACHES_FILE, root / schema.GAUGES_FILE]
        io.write_reaches(reaches, paths[0])
        io.write_table(gauges, paths[1])
        if self.attributes is not None:
            paths.append(root / schema.ATTRIBUTES_FILE)
            io.write_table(self.attributes, paths[-1])
        if self.lakes is not None:
            lakes.write_lakes(self.lakes, root, reaches["id"].to_numpy())
            paths.append(root / schema.LAKES_FILE)
        return paths


# ----------------------------------------------------------------------------- ids


def _examples(values: Sequence[object] | np.ndarray | pd.Series, k: int = 5) -> str:
    """Up to ``k`` distinct values, formatted by :func:`schema.format_values`, for messages."""
    return schema.format_values(pd.unique(np.asarray(values, dtype=object)), k)


def split_ids(values: pd.Series | np.ndarray | Sequence[object]) -> tuple[pd.Series, np.ndarray]:
    """Split ``<prefix>-<digits>`` ids (vectorised with pyarrow).

    Returns:
        (prefix as a pandas string Series, ``<NA>`` where the id does not match; number as int64,
        -1 where it does not match).
    """
    series = pd.Series(values, dtype="string")
    text = pa.array(series.to_numpy(dtype=object, na_value=None), type=pa.string())
    parts = pc.extract_regex(text, r"^(?P<prefix>[A-Za-z]+)-(?P<number>\d+)$")
    prefix = pd.Series(pc.struct_field(parts, "prefix").to_pandas(), dtype="string")
    number = pc.struct_field(parts, "number").cast(pa.int64()).fill_null(-1)
    return prefix, number.to_numpy(zero_copy_only=False)


def parse_prefixed_ids(values: pd.Series, prefixes: Sequence[str], what: str) -> np.ndarray:
    """Numeric part of ids like ``wb-123`` (prefix in ``prefixes``) as int64.

    Raises:
        HydrofabricError: naming the ids that are missing or do not match ``<prefix>-<digits>``.
    """
    prefix, number = split_ids(values)
    bad = (number < 0) | ~prefix.isin(list(prefixes)).fillna(False).to_numpy(bool)
    if bad.any():
        text = pd.Series(values, dtype="string").reset_index(drop=True)
        raise HydrofabricError(
            f"{what}: {int(bad.sum())} ids are not of the form "
            f"{'|'.join(prefixes)}-<number>: {_examples(text[bad].fillna('<missing>'))}"
        )
    return number


def _prefix_of(values: pd.Series) -> pd.Series:
    """The alphabetic prefix of ``prefix-number`` ids (``<NA>`` when absent)."""
    prefix = split_ids(values)[0]
    prefix.index = pd.Series(values).index
    return prefix


# ----------------------------------------------------------------------------- layers


def list_layers(path: str | Path) -> list[str]:
    """Names of the layers of a GeoPackage."""
    return [str(name) for name in pyogrio.list_layers(path)[:, 0]]


def find_layer(
    path: str | Path, candidates: Sequence[str], what: str, required: bool = True
) -> str | None:
    """The first of ``candidates`` present in the GeoPackage.

    Raises:
        HydrofabricError: if ``required`` and none is present, listing the layers that are.
    """
    layers = list_layers(path)
    for name in candidates:
        if name in layers:
            return name
    if required:
        raise HydrofabricError(
            f"{path}: no {what} layer (looked for {', '.join(candidates)}); "
            f"layers present: {', '.join(layers)}"
        )
    return None


def _fields(path: str | Path, layer: str) -> list[str]:
    return [str(f) for f in pyogrio.read_info(path, layer=layer)["fields"]]


def _require_columns(path: str | Path, layer: str, columns: Sequence[str]) -> None:
    fields = _fields(path, layer)
    missing = [c for c in columns if c not in fields]
    if missing:
        raise HydrofabricError(
            f"{path}: layer {layer!r} lacks column(s) {', '.join(missing)}; "
            f"columns present: {', '.join(fields)}"
        )


def _read(
    path: str | Path,
    layer: str,
    columns: Sequence[str],
    geometry: bool = False,
    where: str | None = None,
) -> pd.DataFrame:
    _require_columns(path, layer, columns)
    return pyogrio.read_dataframe(
        path,
        layer=layer,
        columns=list(columns),
        read_geometry=geometry,
        where=where,
        use_arrow=True,
    )


# ----------------------------------------------------------------------------- topology


def resolve_topology(flowpaths: pd.DataFrame, nexus: pd.DataFrame) -> pd.DataFrame:
    """Resolve ``wb -> nex -> wb`` into reach -> reach links.

    Args:
        flowpaths: columns ``id`` (``wb-N``) and ``toid`` (``nex-M``/``tnx-M``, or directly ``wb-K``).
        nexus: columns ``id`` (``nex-M``/``tnx-M``/...) and ``toid`` (``wb-K``).

    Returns:
        DataFrame with ``id`` and ``to_id`` (int64, ``0`` = outlet), in the order of ``flowpaths``.

    Raises:
        HydrofabricError: duplicated flowpath/nexus ids, or flowpath ``toid`` naming a nexus that
            is not in the nexus layer (terminal ``tnx-`` nexuses excepted).
    """
    ids = parse_prefixed_ids(flowpaths["id"], ("wb",), "flowpaths.id")
    _check_unique(ids, "flowpaths.id", prefix="wb-")
    nex_ids = pd.Series(nexus["id"], dtype="string").to_numpy()
    dup = pd.Series(nex_ids).duplicated()
    if dup.any():
        raise HydrofabricError(
            f"nexus.id: duplicated nexus ids: {_examples(nex_ids[dup.to_numpy()])}"
        )

    fp_toid = pd.Series(flowpaths["toid"], dtype="string").reset_index(drop=True)
    direct = _prefix_of(fp_toid) == "wb"
    nexus_toid = pd.Series(nexus["toid"], dtype="string").to_numpy()
    target = pd.Series(pd.Index(nex_ids).get_indexer(fp_toid.fillna("")))
    unresolved = (target < 0) & fp_toid.notna() & ~direct.fillna(False)
    terminal = unresolved & (_prefix_of(fp_toid) == "tnx").fillna(False)
    unknown = unresolved & ~terminal
    if unknown.any():
        raise HydrofabricError(
            f"flowpaths.toid names {int(unknown.sum())} nexus id(s) absent from the nexus layer: "
            f"{_examples(fp_toid[unknown])} (flowpaths {_examples(flowpaths['id'][unknown.to_numpy()])})"
        )
    downstream_wb = pd.Series(pd.NA, index=fp_toid.index, dtype="string")
    hit = (target >= 0).to_numpy()
    downstream_wb[hit] = nexus_toid[target[hit].to_numpy()]
    downstream_wb[direct.fillna(False)] = fp_toid[direct.fillna(False)]
    to_id = _wb_numbers(downstream_wb)
    outside = (to_id != OUTLET) & ~np.isin(to_id, ids)
    if outside.any():
        logger.info(
            "%d flowpaths drain to flowpaths outside the GeoPackage (%s): outlets here",
            int(outside.sum()),
            _examples(to_id[outside]),
        )
        to_id[outside] = OUTLET
    return pd.DataFrame({"id": ids, "to_id": to_id})


def _wb_numbers(values: pd.Series) -> np.ndarray:
    """Numeric part of ``wb-N`` values; missing values and other prefixes map to the outlet."""
    prefix, number = split_ids(values)
    return np.where((prefix == "wb").fillna(False).to_numpy(bool), number, OUTLET)


def _check_unique(ids: np.ndarray, what: str, prefix: str = "") -> None:
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        raise HydrofabricError(
            f"{what}: duplicated ids: {_examples([f'{prefix}{i}' for i in ids[dup]])}"
        )


def check_network(ids: np.ndarray, to_ids: np.ndarray) -> None:
    """Validate a reach network (duplicates, self-loops, cycles) with ``RiverNetwork``."""
    from ddr_pipeline.network import RiverNetwork

    RiverNetwork.from_ids(ids, to_ids)


# ----------------------------------------------------------------------------- channel


def read_channel_attributes(path: str | Path, layer: str | None = None) -> pd.DataFrame:
    """Channel properties per flowpath from the flowpath-attributes layer.

    Returns columns ``id`` (int64) and ``length_m``, ``slope`` plus whichever of ``top_width``,
    ``side_slope``, ``mann_n``, ``x`` are present (float64).
    """
    layer = layer or find_layer(path, ATTRIBUTE_LAYERS, "flowpath attributes")
    fields = _fields(path, layer)
    length_col = next((c for c in LENGTH_COLUMNS if c in fields), None)
    if length_col is None:
        raise HydrofabricError(
            f"{path}: layer {layer!r} has none of the length columns {', '.join(LENGTH_COLUMNS)}; "
            f"columns present: {', '.join(fields)}"
        )
    optional = [c for c in CHANNEL_COLUMNS if c != "So" and c in fields]
    table = _read(path, layer, ["id", length_col, "So", *optional])
    out = pd.DataFrame({"id": parse_prefixed_ids(table["id"], ("wb",), f"{layer}.id")})
    out["length_m"] = table[length_col].to_numpy(dtype="float64")
    for src in ["So", *optional]:
        out[CHANNEL_COLUMNS[src]] = pd.to_numeric(table[src], errors="coerce").to_numpy("float64")
    _check_unique(out["id"].to_numpy(), f"{layer}.id", prefix="wb-")
    return out


def _merge_channel(topology: pd.DataFrame, channel: pd.DataFrame, default_x: float) -> pd.DataFrame:
    merged = topology.merge(channel, on="id", how="left", validate="one_to_one", indicator=True)
    missing = merged["_merge"] == "left_only"
    if missing.any():
        raise HydrofabricError(
            f"{int(missing.sum())} flowpaths have no flowpath attributes: "
            f"{_examples('wb-' + merged['id'][missing].astype(str))}"
        )
    merged = merged.drop(columns="_merge")
    for column, test in (("length_m", merged["length_m"] > 0), ("slope", merged["slope"] >= 0)):
        bad = ~test.fillna(False)
        if bad.any():
            raise HydrofabricError(
                f"flowpath attribute {column} is missing or out of range for "
                f"{int(bad.sum())} flowpaths: {_examples('wb-' + merged['id'][bad].astype(str))}"
            )
    if "x" not in merged:
        merged["x"] = default_x
    merged["x"] = merged["x"].fillna(default_x).clip(0.0, 0.5)
    for column in ("top_width", "side_slope", "mann_n"):
        if column not in merged:
            merged[column] = np.nan
    return merged


def as_linestrings(geometry: gpd.GeoSeries) -> gpd.GeoSeries:
    """MultiLineStrings -> LineStrings (merged; disjoint parts joined end to start)."""
    geoms = shapely.line_merge(geometry.to_numpy())
    multi = np.flatnonzero(shapely.get_type_id(geoms) == 5)
    if multi.size:
        logger.info("%d flowpath geometries have disjoint parts: joined (approximate)", multi.size)
        parts = shapely.get_parts(geoms[multi], return_index=True)
        coords, index = shapely.get_coordinates(parts[0], return_index=True)
        owner = parts[1][index]
        geoms[multi] = shapely.linestrings(coords, indices=owner)
    return gpd.GeoSeries(geoms, index=geometry.index, crs=geometry.crs)


# ----------------------------------------------------------------------------- gauges


def _gauges_from_network(path: str | Path, flowpaths: pd.DataFrame) -> pd.DataFrame:
    layer = find_layer(path, NETWORK_LAYERS, "network", required=False)
    if layer is None or "hl_uri" not in _fields(path, layer):
        return pd.DataFrame({"STAID": [], "nexus": []}, dtype="string")
    rows = _read(path, layer, ["id", "hl_uri"], where="hl_uri LIKE 'gages-%'")
    rows = rows[_prefix_of(rows["id"]) == "wb"]
    staid = pd.Series(rows["hl_uri"], dtype="string").str.slice(len("gages-"))
    nexus = pd.Series(rows["id"], dtype="string").map(
        pd.Series(flowpaths["toid"].to_numpy(), index=flowpaths["id"].to_numpy(), dtype="string")
    )
    return pd.DataFrame({"STAID": staid.to_numpy(), "nexus": nexus.to_numpy()}, dtype="string")


def _gauges_from_nexus(nexus: pd.DataFrame) -> pd.DataFrame:
    if not {"poi_type", "poi_value"} <= set(nexus.columns):
        return pd.DataFrame({"STAID": [], "nexus": []}, dtype="string")
    rows = nexus[
        pd.Series(nexus["poi_type"], dtype="string")
        .str.lower()
        .isin(["gages", "gage"])
        .fillna(False)
        .to_numpy()
    ]
    return pd.DataFrame(
        {"STAID": rows["poi_value"].to_numpy(), "nexus": rows["id"].to_numpy()}, dtype="string"
    )


def _gauges_from_attributes(path: str | Path, flowpaths: pd.DataFrame) -> pd.DataFrame:
    layer = find_layer(path, ATTRIBUTE_LAYERS, "flowpath attributes", required=False)
    if layer is None or "rl_gages" not in _fields(path, layer):
        return pd.DataFrame({"STAID": [], "nexus": []}, dtype="string")
    rows = _read(path, layer, ["id", "rl_gages"])
    rows = rows[pd.Series(rows["rl_gages"], dtype="string").str.strip().str.len().fillna(0) > 0]
    staid = pd.Series(rows["rl_gages"], dtype="string").str.split(",")
    exploded = pd.DataFrame({"id": rows["id"].to_numpy(), "STAID": staid.to_numpy()}).explode(
        "STAID"
    )
    nexus = pd.Series(exploded["id"], dtype="string").map(
        pd.Series(flowpaths["toid"].to_numpy(), index=flowpaths["id"].to_numpy(), dtype="string")
    )
    return pd.DataFrame(
        {"STAID": exploded["STAID"].to_numpy(), "nexus": nexus.to_numpy()}, dtype="string"
    )


def locate_gauges(path: str | Path, flowpaths: pd.DataFrame, nexus: pd.DataFrame) -> pd.DataFrame:
    """Gauge -> nexus pairs found in the network layer, nexus POIs and ``rl_gages``.

    Returns unique rows ``STAID`` (8-digit when numeric), ``nexus`` (nexus id string).
    """
    found = pd.concat(
        [
            _gauges_from_network(path, flowpaths),
            _gauges_from_nexus(nexus),
            _gauges_from_attributes(path, flowpaths),
        ],
        ignore_index=True,
    )
    found["STAID"] = normalize_staid(found["STAID"])
    found = found.dropna().drop_duplicates().reset_index(drop=True)
    not_usgs = ~found["STAID"].str.fullmatch(r"\d{8}").fillna(False)
    if not_usgs.any():
        logger.warning(
            "dropping %d gauge ids that are not 8-digit station ids: %s",
            int(not_usgs.sum()),
            _examples(found["STAID"][not_usgs]),
        )
        found = found[~not_usgs].reset_index(drop=True)
    return found


def build_gauges(
    located: pd.DataFrame,
    flowpaths: gpd.GeoDataFrame,
    nexus: gpd.GeoDataFrame,
    gauge_info: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Schema gauges table: one row per STAID, ``reach_ids`` = flowpaths draining into its nexus.

    A gauge located at several nexuses keeps the one whose drainage area is closest to the
    gauge-info ``DRAIN_SQKM`` (the largest drainage area when no gauge info is given). With
    ``gauge_info`` (DDR gauge CSV, see ``stores.read_gage_info``) only its gauges are kept and its
    drainage area / coordinates / names are used.
    """
    fp_ids = parse_prefixed_ids(flowpaths["id"], ("wb",), "flowpaths.id")
    inflows = pd.DataFrame(
        {
            "nexus": pd.Series(flowpaths["toid"], dtype="string").to_numpy(),
            "reach": fp_ids,
            "area": _drainage_area(flowpaths),
        }
    )
    inflows = inflows[inflows["nexus"].isin(located["nexus"]).to_numpy()]  # gauged nexuses only
    grouped = inflows.groupby("nexus", sort=False)
    per_nexus = pd.DataFrame(
        {
            "reach_ids": grouped["reach"].agg(lambda s: s.to_numpy().tolist()),
            "area": grouped["area"].sum(min_count=1),
        }
    )
    table = located.join(per_nexus, on="nexus", how="inner")
    if gauge_info is not None:
        table = table.merge(gauge_info, on="STAID", how="inner")
        table["score"] = -(table["area"] - table["DRAIN_SQKM"]).abs().fillna(np.inf)
    else:
        table["score"] = table["area"].fillna(-np.inf)
    table = table.sort_values(["STAID", "score"], ascending=[True, False])
    ambiguous = table["STAID"].duplicated(keep=False)
    if ambiguous.any():
        logger.info(
            "%d gauges found at several nexuses; kept the best drainage-area match",
            table["STAID"][ambiguous].nunique(),
        )
    table = table.drop_duplicates("STAID").reset_index(drop=True)
    lonlat = _nexus_lonlat(nexus, table["nexus"])
    out = pd.DataFrame(
        {
            "STAID": pd.Series(table["STAID"], dtype="string").to_numpy(),
            "reach_ids": [list(map(int, r)) for r in table["reach_ids"]],
            "drain_sqkm": table["area"].to_numpy("float64"),
            "lat": lonlat[:, 1],
            "lon": lonlat[:, 0],
        }
    )
    if gauge_info is not None:
        out["drain_sqkm"] = table["DRAIN_SQKM"].to_numpy("float64")
        out["lat"] = table["LAT_GAGE"].to_numpy("float64")
        out["lon"] = table["LNG_GAGE"].to_numpy("float64")
        out["name"] = pd.Series(table["STANAME"], dtype="string").to_numpy()
        lost = sorted(set(gauge_info["STAID"]) - set(out["STAID"]))
        if lost:
            logger.warning(
                "%d gauges of the gauge list are not on this hydrofabric: %s",
                len(lost),
                _examples(lost),
            )
    out["STAID"] = out["STAID"].astype("string")
    return out


def _drainage_area(flowpaths: pd.DataFrame) -> np.ndarray:
    for column in ("tot_drainage_areasqkm", "tot_drainage_area_sqkm"):
        if column in flowpaths:
            return pd.to_numeric(flowpaths[column], errors="coerce").to_numpy("float64")
    return np.full(len(flowpaths), np.nan)


def _nexus_lonlat(nexus: gpd.GeoDataFrame, ids: pd.Series) -> np.ndarray:
    """(lon, lat) in degrees of the given nexuses (NaN when the nexus has no geometry)."""
    out = np.full((len(ids), 2), np.nan)
    if nexus.geometry is None or nexus.crs is None or len(ids) == 0:
        return out
    index = pd.Index(pd.Series(nexus["id"], dtype="string")).get_indexer(
        pd.Series(ids, dtype="string")
    )
    points = nexus.geometry.iloc[index[index >= 0]].to_crs(4326)
    out[index >= 0] = shapely.get_coordinates(points.to_numpy())[:, :2]
    return out


# ----------------------------------------------------------------------------- attributes


def divide_to_reach(flowpaths: pd.DataFrame) -> pd.Series:
    """Map ``cat-N`` divide ids to reach ids (``divide_id``/``realized_catchment`` column).

    Without such a column the v2.2 convention ``cat-N`` <-> ``wb-N`` is used.
    """
    reach = parse_prefixed_ids(flowpaths["id"], ("wb",), "flowpaths.id")
    column = next((c for c in DIVIDE_COLUMNS if c in flowpaths), None)
    if column is None:
        return pd.Series(reach, index=pd.Index(reach, name="divide"), name="id")
    known = pd.Series(flowpaths[column], dtype="string").notna().to_numpy()
    divide = parse_prefixed_ids(flowpaths[column][known], ("cat",), f"flowpaths.{column}")
    mapping = pd.Series(reach[known], index=pd.Index(divide, name="divide"), name="id")
    shared = mapping.index.duplicated()
    if shared.any():
        logger.warning(
            "%d divides are shared by several flowpaths; each maps to its first flowpath: %s",
            int(shared.sum()),
            _examples(mapping.index[shared]),
        )
    return mapping[~shared]


def attributes_for_reaches(
    table: pd.DataFrame,
    divide_map: pd.Series,
    names: Sequence[str] | None = None,
    key: str = "divide_id",
) -> pd.DataFrame:
    """Schema attributes (``id`` + float64 columns) from a table keyed by ``cat-N`` (or ``N``).

    Args:
        table: one row per divide, key column ``key`` (``cat-N`` strings or integers).
        divide_map: divide number -> reach id (``divide_to_reach``).
        names: attribute columns to keep (default: every numeric column but the key).

    Raises:
        HydrofabricError: missing key or attribute columns (named).
    """
    if key not in table:
        raise HydrofabricError(
            f"attribute table lacks the key column {key!r}; columns: "
            f"{', '.join(map(str, table.columns))}"
        )
    if names is None:
        names = [c for c in table.columns if c != key and pd.api.types.is_numeric_dtype(table[c])]
    missing = [n for n in names if n not in table]
    if missing:
        raise HydrofabricError(
            f"attribute table lacks column(s) {', '.join(missing)}; columns: "
            f"{', '.join(map(str, table.columns))}"
        )
    keys = table[key]
    if not pd.api.types.is_integer_dtype(keys):
        keys = parse_prefixed_ids(keys, ("cat",), f"attributes.{key}")
    values = table[list(names)].apply(pd.to_numeric, errors="coerce").astype("float64")
    values.index = pd.Index(np.asarray(keys, dtype="int64"))
    values = values[~values.index.duplicated()]
    out = values.reindex(divide_map.index.to_numpy())
    absent = int(out.isna().all(axis=1).sum()) if names else 0
    if absent:
        logger.warning("%d reaches have no row in the attribute table (NaN attributes)", absent)
    out.insert(0, "id", divide_map.to_numpy("int64"))
    return out.reset_index(drop=True)


def read_divide_attributes(
    path: str | Path, divide_map: pd.Series, names: Sequence[str] | None = None
) -> pd.DataFrame | None:
    """Attributes from the GeoPackage's divide-attributes layer, or None when absent."""
    layer = find_layer(path, DIVIDE_ATTRIBUTE_LAYERS, "divide attributes", required=False)
    if layer is None:
        return None
    fields = _fields(path, layer)
    key = "divide_id" if "divide_id" in fields else "id"
    columns = [key, *(names if names is not None else [f for f in fields if f != key])]
    table = _read(path, layer, columns)
    return attributes_for_reaches(table, divide_map, names, key=key)


# ----------------------------------------------------------------------------- entry point


def read_flowpaths(path: str | Path) -> gpd.GeoDataFrame:
    """The flowpaths layer (``id``, ``toid``, optional divide/drainage-area columns, geometry)."""
    layer = find_layer(path, FLOWPATH_LAYERS, "flowpaths")
    fields = _fields(path, layer)
    extra = [c for c in (*DIVIDE_COLUMNS, "tot_drainage_areasqkm", "lengthkm") if c in fields]
    _require_columns(path, layer, ["id", "toid"])
    return pyogrio.read_dataframe(path, layer=layer, columns=["id", "toid", *extra], use_arrow=True)


def read_nexus(path: str | Path) -> gpd.GeoDataFrame:
    """The nexus layer (``id``, ``toid``, optional POI columns, geometry)."""
    layer = find_layer(path, NEXUS_LAYERS, "nexus")
    fields = _fields(path, layer)
    _require_columns(path, layer, ["id", "toid"])
    extra = [c for c in ("poi_type", "poi_value") if c in fields]
    return pyogrio.read_dataframe(path, layer=layer, columns=["id", "toid", *extra], use_arrow=True)


def convert_hydrofabric(
    path: str | Path,
    *,
    gauge_info: pd.DataFrame | None = None,
    attributes: pd.DataFrame | None = None,
    attribute_names: Sequence[str] | None = None,
    attributes_key: str = "divide_id",
    attributes_layer: str | None = None,
    default_x: float = 0.3,
) -> FabricTables:
    """Convert a hydrofabric v2.2 GeoPackage into the schema tables.

    Args:
        path: GeoPackage (``flowpaths``, ``nexus``, flowpath attributes; optional ``network``,
            ``divide-attributes``).
        gauge_info: optional DDR gauge CSV table (``stores.read_gage_info``): restricts the gauges
            and provides drainage areas, coordinates and names.
        attributes: optional attribute table keyed by ``attributes_key`` (``cat-N``); default: the
            GeoPackage's divide-attributes layer when present.
        attribute_names: attribute columns to keep (default: all numeric columns).
        attributes_layer: override the flowpath-attributes layer name.
        default_x: Muskingum X where the fabric has no ``MusX``.

    Raises:
        HydrofabricError: missing layers/columns, unresolved ids or bad channel values; the
            ``RiverNetwork`` errors for cycles and self-loops.
    """
    flowpaths = read_flowpaths(path)
    nexus = read_nexus(path)
    topology = resolve_topology(flowpaths, nexus)
    check_network(topology["id"].to_numpy(), topology["to_id"].to_numpy())
    channel = read_channel_attributes(path, attributes_layer)
    reaches = _merge_channel(topology, channel, default_x)
    columns = ["id", "to_id", "length_m", "slope", "x", "top_width", "side_slope", "mann_n"]
    reaches = gpd.GeoDataFrame(
        reaches[columns],
        geometry=as_linestrings(flowpaths.geometry).reset_index(drop=True),
        crs=flowpaths.crs,
    )
    gauges = build_gauges(locate_gauges(path, flowpaths, nexus), flowpaths, nexus, gauge_info)
    divide_map = divide_to_reach(flowpaths)
    if attributes is not None:
        attrs = attributes_for_reaches(attributes, divide_map, attribute_names, attributes_key)
    else:
        attrs = read_divide_attributes(path, divide_map, attribute_names)
    logger.info(
        "hydrofabric %s: %d reaches, %d outlets, %d gauges",
        path,
        len(reaches),
        int((reaches["to_id"] == OUTLET).sum()),
        len(gauges),
    )
    return FabricTables(reaches=reaches, gauges=gauges, attributes=attrs)
