"""NWM lakes: ``LAKEPARM`` + RouteLink's waterbody mapping -> ``lakes.parquet`` on a collapsed network.

In the NWM RouteLink, every link inside a lake carries the lake's ``NHDWaterbodyComID`` (the
``lake_id`` of ``LAKEPARM``); WRF-Hydro and t-route route the whole waterbody as one level pool
whose outflow leaves through the one link whose ``to`` leaves the waterbody (the outlet link). The
schema routes a lake at one reach (docs/data_formats.md), so :func:`collapse_lakes` collapses each
waterbody onto its outlet link:

* the internal links (all the waterbody's links but the outlet) are removed;
* a link draining into an internal link drains into the outlet instead (also the outlet of an
  upstream lake: lake chains stay chained);
* the lateral inflow of the internal links is added to the outlet's (:func:`collapse_lateral`);
* the lake's row in ``lakes.parquet`` sits at the outlet link, with LAKEPARM's parameters under
  the schema's names and ``initial_elevation`` from ``ifd`` (:func:`lakeparm_table`).

Errors name the waterbodies, lakes and links: a waterbody without an outlet link (its links form
a cycle) or with several, a waterbody whose ``lake_id`` is not in LAKEPARM (unless
``missing="channel"``: its links then stay channels, logged, the user's explicit choice), a
LAKEPARM lake no link carries (unless ``extra="drop"``: LAKEPARM files usually cover more lakes
than a subset domain's RouteLink; the count is logged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline.data import schema

logger = logging.getLogger(__name__)

LINK, TO, WATERBODY = "link", "to", "NHDWaterbodyComID"
ROUTELINK_REQUIRED = (LINK, TO, WATERBODY)
LAKEPARM_ID, IFD = "lake_id", "ifd"
LAKEPARM_REQUIRED: tuple[str, ...] = (*schema.NWM_LAKEPARM_NAMES.values(), IFD)


class NwmLakeError(ValueError):
    """NWM RouteLink/LAKEPARM inputs that cannot become lakes (names the waterbodies and links)."""


@dataclass(frozen=True)
class CollapsedLakes:
    """A RouteLink network with its waterbodies collapsed onto their outlet links.

    Attributes:
        links: the RouteLink rows of the kept links (every column kept), ``to`` rewired.
        lakes: the schema's lakes table (``reach_id`` = the outlet link).
        lateral_target: original link -> the kept link that receives its lateral inflow (itself,
            or its waterbody's outlet), indexed by every original link.
    """

    links: pd.DataFrame
    lakes: pd.DataFrame
    lateral_target: pd.Series

    @property
    def removed(self) -> np.ndarray:
        """The internal lake links removed from the network."""
        target = self.lateral_target
        return target.index.to_numpy()[target.to_numpy() != target.index.to_numpy()]


def _require(df: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: missing variable(s) {missing}; has {list(df.columns)}")


def lakeparm_table(lakeparm: pd.DataFrame, source: str = "NWM LAKEPARM") -> pd.DataFrame:
    """LAKEPARM rows under the schema's lake columns (no ``reach_id`` yet), one per ``lake_id``.

    ``initial_elevation`` = ``OrificeE + ifd * (LkMxE - OrificeE)``, NWM's own start
    (:func:`schema.initial_elevation_from_ifd`). Duplicate lake ids raise ``NwmLakeError``.
    """
    _require(lakeparm, LAKEPARM_REQUIRED, "LAKEPARM")
    rename = {nwm: ours for ours, nwm in schema.NWM_LAKEPARM_NAMES.items()}
    out = (
        lakeparm[list(rename)]
        .rename(columns=rename)
        .astype({c: "float64" for c in schema.LAKE_PARAMS if c not in schema.LAKE_OPTIONAL_PARAMS})
    )
    out[schema.LAKE_ID_COL] = out[schema.LAKE_ID_COL].astype("int64")
    dup = out[schema.LAKE_ID_COL][out[schema.LAKE_ID_COL].duplicated()].unique()
    if dup.size:
        raise NwmLakeError(f"LAKEPARM: duplicate lake_id {schema.format_values(dup)}")
    out[schema.INITIAL_ELEVATION_COL] = schema.initial_elevation_from_ifd(
        out["orifice_elevation"], out["max_elevation"], lakeparm[IFD].to_numpy(np.float64)
    )
    out["source"] = source
    return out.reset_index(drop=True)


def waterbody_outlets(routelink: pd.DataFrame) -> pd.Series:
    """Waterbody id -> its outlet link (the one link whose ``to`` leaves the waterbody).

    A waterbody id <= 0 (NWM writes -9999) marks a channel link.

    Raises:
        NwmLakeError: naming waterbodies with no outlet (a cycle) or several outlets.
    """
    link = routelink[LINK].to_numpy(np.int64)
    waterbody = routelink[WATERBODY].fillna(-1).to_numpy(np.int64)
    waterbody_of = pd.Series(waterbody, index=link)
    to_waterbody = waterbody_of.reindex(routelink[TO].to_numpy(np.int64)).fillna(-1).to_numpy()
    in_lake = waterbody > 0
    exits = in_lake & (to_waterbody != waterbody)
    counts = pd.Series(exits[in_lake]).groupby(waterbody[in_lake]).sum()
    none = counts.index[counts.to_numpy() == 0].to_numpy()
    if none.size:
        raise NwmLakeError(
            f"RouteLink: waterbody (NHDWaterbodyComID) {schema.format_values(none)} has no outlet "
            "link: every link's `to` stays inside the waterbody (a cycle)"
        )
    several = counts[counts > 1]
    if len(several):
        where = pd.Series(link[exits]).groupby(waterbody[exits]).agg(list).loc[several.index]
        raise NwmLakeError(
            f"RouteLink: waterbodies with several outlet links (one lake routes at one reach): "
            f"{schema.format_values([f'{w}: {v}' for w, v in where.items()])}"
        )
    return pd.Series(link[exits], index=pd.Index(waterbody[exits], name=WATERBODY), name=LINK)


def _lake_rows(
    outlets: pd.Series, lakeparm: pd.DataFrame, missing: str, extra: str, source: str
) -> tuple[pd.DataFrame, pd.Series]:
    """(lakes table at the outlets, the outlets that become lakes) under the missing/extra rules."""
    table = lakeparm_table(lakeparm, source)
    known = outlets.index.isin(table[schema.LAKE_ID_COL])
    if not known.all():
        absent = outlets.index[~known].to_numpy()
        if missing != "channel":
            raise NwmLakeError(
                f"LAKEPARM has no lake_id {schema.format_values(absent)} that RouteLink's "
                "NHDWaterbodyComID names; add them, or pass missing='channel' to route those "
                "waterbodies' links as channels"
            )
        logger.warning(
            "LAKEPARM lacks waterbodies %s: their links route as channels (missing='channel')",
            schema.format_values(absent),
        )
        outlets = outlets[known]
    unused = ~table[schema.LAKE_ID_COL].isin(outlets.index)
    if unused.any():
        ids = table.loc[unused, schema.LAKE_ID_COL].to_numpy()
        if extra != "drop":
            raise NwmLakeError(
                f"LAKEPARM lake_id {schema.format_values(ids)} is on no RouteLink link "
                "(NHDWaterbodyComID); pass extra='drop' when LAKEPARM covers a larger domain"
            )
        logger.info("LAKEPARM: %d lakes on no link of this RouteLink dropped", int(unused.sum()))
        table = table[~unused]
    table.insert(1, schema.LAKE_REACH_COL, outlets.reindex(table[schema.LAKE_ID_COL]).to_numpy())
    return table.reset_index(drop=True), outlets


def collapse_lakes(
    routelink: pd.DataFrame,
    lakeparm: pd.DataFrame,
    *,
    missing: Literal["error", "channel"] = "error",
    extra: Literal["error", "drop"] = "error",
    source: str = "NWM LAKEPARM",
) -> CollapsedLakes:
    """Collapse every waterbody of ``routelink`` onto its outlet link (module docstring).

    Args:
        routelink: one row per link with ``link``, ``to`` (0 = outlet) and ``NHDWaterbodyComID``
            (<= 0 or NaN = not in a lake); other columns are carried along.
        lakeparm: LAKEPARM variables as columns (``lake_id``, ``LkArea``, ... , ``ifd``).
        missing: a waterbody absent from LAKEPARM is an error, or (``"channel"``) stays channels.
        extra: a LAKEPARM lake on no link is an error, or (``"drop"``) dropped (logged).
        source: provenance written in the lakes table's ``source`` column.
    """
    _require(routelink, ROUTELINK_REQUIRED, "RouteLink")
    links = routelink.reset_index(drop=True)
    link = links[LINK].to_numpy(np.int64)
    if len(np.unique(link)) != link.size:
        dup = pd.Series(link)[pd.Series(link).duplicated()].unique()
        raise NwmLakeError(f"RouteLink: duplicate link {schema.format_values(dup)}")
    lakes, outlets = _lake_rows(waterbody_outlets(links), lakeparm, missing, extra, source)
    waterbody = links[WATERBODY].fillna(-1).to_numpy(np.int64)
    outlet_of_link = outlets.reindex(waterbody).to_numpy()  # NaN: a channel (or a kept waterbody)
    target = np.where(np.isnan(outlet_of_link), link, outlet_of_link).astype(np.int64)
    lateral_target = pd.Series(target, index=pd.Index(link, name=LINK), name="target")
    kept = links[target == link].copy()
    to = kept[TO].to_numpy(np.int64)
    inside = np.isin(to, link)  # `to` = 0 or a link outside the file: an outlet, left as it is
    kept[TO] = np.where(inside, lateral_target.reindex(to).to_numpy(), to).astype(np.int64)
    logger.info(
        "collapsed %d waterbodies: %d internal links removed, %d links kept",
        len(lakes),
        int((target != link).sum()),
        len(kept),
    )
    return CollapsedLakes(kept.reset_index(drop=True), lakes, lateral_target)


def collapse_lateral(
    qlat: xr.DataArray, lateral_target: pd.Series, dim: str = "feature_id"
) -> xr.DataArray:
    """Sum the lateral inflow of each waterbody's links onto its outlet link (any other dims kept).

    ``qlat`` must hold every link of ``lateral_target``; the result is indexed by the kept links
    (in the order of their first appearance in ``lateral_target``) along ``dim``.
    """
    have = qlat[dim].to_numpy().astype(np.int64)
    absent = np.setdiff1d(lateral_target.index.to_numpy(), have)
    if absent.size:
        raise NwmLakeError(f"lateral inflow: no values for link {schema.format_values(absent)}")
    da = qlat.sel({dim: lateral_target.index.to_numpy()}).transpose(dim, ...)
    codes, kept = pd.factorize(lateral_target.to_numpy())
    summed = np.zeros((kept.size, *da.shape[1:]), dtype=np.float64)
    np.add.at(summed, codes, da.to_numpy().astype(np.float64))
    coords = {k: v for k, v in da.coords.items() if dim not in v.dims}
    out = xr.DataArray(summed, dims=da.dims, coords={**coords, dim: kept}, attrs=dict(da.attrs))
    return out.astype(qlat.dtype).rename(qlat.name)
