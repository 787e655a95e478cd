"""Synthetic river networks, GeoPackages, shapefiles and stores for tests and benchmarks.

Everything is generated from a seed with vectorised numpy (a 10^6-reach network takes < 1 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
import xarray as xr

CRS_ALBERS = "EPSG:5070"


def dendritic_network(
    n: int,
    n_basins: int = 1,
    window: int = 8,
    seed: int = 0,
    *,
    size_sigma: float = 1.0,
    hack_exponent: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A random dendritic forest of ``n`` reaches in ``n_basins`` basins (ids shuffled).

    Within a basin, reach ``k`` (k >= 1, numbered from the outlet) drains into a random reach among
    the ``max(window, k ** hack_exponent)`` reaches numbered just below it. With
    ``hack_exponent=0`` the longest path is about ``2 k / window`` links; with 0.5 it grows like
    ``4 sqrt(k)`` (Hack's law-like, realistic for continental fabrics). Basin sizes are
    ``1 + multinomial`` with lognormal(0, ``size_sigma``) weights (heavy tail for large sigma).

    Returns:
        (ids, to_ids): int64 arrays, ids a random permutation of 1..n, to_id 0 = outlet.
    """
    rng = np.random.default_rng(seed)
    n_basins = min(n_basins, n)
    weights = rng.lognormal(0.0, size_sigma, n_basins)
    sizes = 1 + rng.multinomial(n - n_basins, weights / weights.sum())
    start = np.repeat(np.cumsum(sizes) - sizes, sizes)
    local = np.arange(n) - start
    width = np.maximum(window, np.floor(local**hack_exponent)).astype(np.int64)
    offset = 1 + np.floor(rng.random(n) * np.minimum(local, width)).astype(np.int64)
    parent = np.where(local == 0, -1, np.arange(n) - offset)
    ids = rng.permutation(n).astype(np.int64) + 1
    to_ids = np.where(parent >= 0, ids[np.maximum(parent, 0)], 0)
    return ids, to_ids


def upstream_area(ids: np.ndarray, to_ids: np.ndarray, unit_area: np.ndarray) -> np.ndarray:
    """Accumulated area per reach (needs ``RiverNetwork``; numpy loop over levels only)."""
    from ddr_pipeline.network import RiverNetwork

    net = RiverNetwork.from_ids(ids, to_ids)
    total = unit_area.astype(np.float64).copy()
    for group in net.level_groups()[:-1]:
        down = net.downstream_index[group]
        ok = down >= 0
        np.add.at(total, down[ok], total[group[ok]])
    return total


def _lines(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(1.0e6, 2.0e6, n)
    y0 = rng.uniform(1.0e6, 2.5e6, n)
    coords = np.stack([np.stack([x0, y0], 1), np.stack([x0 + 500.0, y0 + 300.0], 1)], 1)
    return shapely.linestrings(coords)


def write_hydrofabric_gpkg(
    path: str | Path,
    ids: np.ndarray,
    to_ids: np.ndarray,
    gauges: dict[str, int] | None = None,
    *,
    attribute_layer: str = "flowpath-attributes",
    length_column: str = "Length_m",
    network_layer: bool = True,
    divide_attributes: bool = True,
    multilines: bool = False,
    seed: int = 0,
) -> Path:
    """Write a hydrofabric v2.2-like GeoPackage for reaches ``wb-<id>``.

    Topology: flowpath ``wb-i`` drains into nexus ``nex-j`` (``j`` = its downstream id), which
    drains into ``wb-j``; outlets drain into terminal nexus ``tnx-i`` -> ``wb-0``. ``gauges`` maps
    STAID -> the reach whose outlet nexus carries the gauge (``network.hl_uri = gages-<STAID>``).
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    n = ids.size
    wb = np.char.add("wb-", ids.astype(str))
    outlet = to_ids == 0
    toid = np.where(
        outlet, np.char.add("tnx-", ids.astype(str)), np.char.add("nex-", to_ids.astype(str))
    )
    area = rng.uniform(1.0, 30.0, n)
    geoms = _lines(n, seed)
    if multilines:
        geoms = shapely.multilinestrings(shapely.get_parts(geoms), indices=np.arange(n))
    flowpaths = gpd.GeoDataFrame(
        {
            "id": wb,
            "toid": toid,
            "divide_id": np.char.add("cat-", ids.astype(str)),
            "lengthkm": rng.uniform(0.5, 8.0, n),
            "areasqkm": area,
            "tot_drainage_areasqkm": upstream_area(ids, to_ids, area),
        },
        geometry=geoms,
        crs=CRS_ALBERS,
    )
    nex_ids = np.unique(toid)
    nex_to = np.where(
        np.char.startswith(nex_ids, "tnx-"), "wb-0", np.char.replace(nex_ids, "nex-", "wb-")
    )
    nexus = gpd.GeoDataFrame(
        {"id": nex_ids, "toid": nex_to, "type": "nexus"},
        geometry=shapely.points(rng.uniform(1.0e6, 2.0e6, (nex_ids.size, 2))),
        crs=CRS_ALBERS,
    )
    attributes = pd.DataFrame(
        {
            "id": wb,
            length_column: flowpaths["lengthkm"].to_numpy() * 1000.0,
            "So": rng.uniform(1e-4, 0.02, n),
            "TopWdth": rng.uniform(2.0, 60.0, n),
            "ChSlp": rng.uniform(0.5, 2.0, n),
            "MusX": np.full(n, 0.2),
            "n": np.full(n, 0.06),
            "rl_gages": pd.Series([None] * n, dtype="string"),
        }
    )
    pyogrio.write_dataframe(flowpaths, path, layer="flowpaths", driver="GPKG")
    pyogrio.write_dataframe(nexus, path, layer="nexus", driver="GPKG", append=True)
    pyogrio.write_dataframe(attributes, path, layer=attribute_layer, driver="GPKG", append=True)
    if network_layer:
        gauge_rows = pd.DataFrame(
            {
                "id": [f"wb-{r}" for r in (gauges or {}).values()],
                "hl_uri": [f"gages-{s}" for s in (gauges or {})],
            },
            dtype="string",
        )
        network = pd.concat([pd.DataFrame({"id": wb, "hl_uri": pd.NA}, dtype="string"), gauge_rows])
        network["toid"] = network["id"].map(pd.Series(toid, index=wb))
        pyogrio.write_dataframe(network, path, layer="network", driver="GPKG", append=True)
    if divide_attributes:
        divides = pd.DataFrame(
            {
                "divide_id": np.char.add("cat-", ids.astype(str)),
                "mean.elevation": rng.uniform(0, 2000, n),
                "mean.slope": rng.uniform(0, 30, n),
                "aridity": rng.uniform(0.2, 3.0, n),
            }
        )
        pyogrio.write_dataframe(
            divides, path, layer="divide-attributes", driver="GPKG", append=True
        )
    return path


def upstream_columns(ids: np.ndarray, to_ids: np.ndarray, k: int = 4) -> np.ndarray:
    """``(n, k)`` array of up to ``k`` upstream ids per reach (0 = none), like MERIT up1..up4."""
    pos = pd.Index(ids).get_indexer(to_ids)
    has = pos >= 0
    down = pos[has]
    ups = ids[has]
    srt = np.argsort(down, kind="stable")
    down, ups = down[srt], ups[srt]
    rank = np.arange(down.size) - np.searchsorted(down, down)
    out = np.zeros((ids.size, k), np.int64)
    keep = rank < k
    out[down[keep], rank[keep]] = ups[keep]
    return out


def write_merit_shapefile(
    path: str | Path,
    ids: np.ndarray,
    to_ids: np.ndarray,
    seed: int = 0,
    drop: Sequence[str] = (),
    accumulate: bool = True,
) -> Path:
    """Write a MERIT-Basins-like river shapefile (``COMID``, ``NextDownID``, ``up1..up4`` ...).

    ``accumulate=False`` writes ``uparea = unitarea`` (allows writing networks with cycles).
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    n = ids.size
    unit = rng.uniform(20.0, 80.0, n)
    ups = upstream_columns(ids, to_ids)
    table = {
        "COMID": ids,
        "lengthkm": rng.uniform(1.0, 15.0, n),
        "lengthdir": rng.uniform(1, 10, n),
        "sinuosity": rng.uniform(1, 1.5, n),
        "slope": rng.uniform(0.0, 0.01, n),
        "uparea": upstream_area(ids, to_ids, unit) if accumulate else unit,
        "order": np.ones(n, np.int64),
        "NextDownID": to_ids,
        "maxup": (ups > 0).sum(1),
        **{f"up{i + 1}": ups[:, i] for i in range(4)},
        "unitarea": unit,
    }
    frame = gpd.GeoDataFrame(
        {k: v for k, v in table.items() if k not in drop}, geometry=_lines(n, seed), crs="EPSG:4326"
    )
    pyogrio.write_dataframe(frame, path, driver="ESRI Shapefile")
    return path


def write_gauge_csv(
    path: str | Path,
    staids: Sequence[str],
    comids: Sequence[int],
    seed: int = 0,
    **extra: Sequence[object],
) -> Path:
    """Write a DDR gauge CSV (STAID written without leading zeros, like spreadsheets do)."""
    rng = np.random.default_rng(seed)
    n = len(staids)
    table = pd.DataFrame(
        {
            "STAID": [str(int(s)) for s in staids],
            "STANAME": [f"gauge {s}" for s in staids],
            "DRAIN_SQKM": rng.uniform(10, 1000, n),
            "LAT_GAGE": rng.uniform(30, 45, n),
            "LNG_GAGE": rng.uniform(-110, -75, n),
            "COMID": list(comids),
            **extra,
        }
    )
    table.to_csv(path, index=False)
    return Path(path)


def daily_store(
    variable: str,
    dim: str,
    ids: Sequence[object],
    start: str,
    days: int,
    units: str | None = "m3/s",
    seed: int = 0,
    extra_dims: bool = False,
) -> xr.Dataset:
    """A store dataset ``variable(dim, time)`` with daily values starting at ``start``."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(start, periods=days, freq="D").to_numpy("datetime64[ns]")
    values = rng.uniform(0.1, 10.0, (len(ids), days)).astype(np.float32)
    if extra_dims:
        da = xr.DataArray(values[..., None], dims=(dim, "time", "member"))
    else:
        da = xr.DataArray(values, dims=(dim, "time"))
    coord = np.asarray(ids)
    coord = coord.astype(object) if coord.dtype.kind in "OUS" else coord
    da = da.assign_coords({dim: coord, "time": time})
    if units is not None:
        da.attrs["units"] = units
    return da.to_dataset(name=variable)


def write_zarr_store(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` as a plain zarr v3 store."""
    ds.to_zarr(str(path), mode="w", zarr_format=3, consolidated=False)
    return Path(path)


def write_icechunk_store(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` into a new local Icechunk repository (branch ``main``)."""
    import icechunk

    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    ds.to_zarr(session.store, mode="w", zarr_format=3, consolidated=False)
    session.commit("synthetic store")
    return Path(path)


def write_layers(path: str | Path, layers: dict[str, pd.DataFrame]) -> Path:
    """Write plain tables / GeoDataFrames as layers of one GeoPackage (for hand-made fabrics)."""
    path = Path(path)
    for i, (name, frame) in enumerate(layers.items()):
        pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG", append=i > 0)
    return path
