"""Route t-route's LowerColorado_TX NWM domain with its level-pool lakes; compare with NWM's flows.

Usage (from the project root; reads only the committed folder, no network)::

    python scripts/nwm_lakes_compare.py [--data data/01_raw/nwm_lower_colorado]
        [--out benchmarks/results] [--dt 300] [--rel-floor 0.1] [--threads N]

The folder (``ddr-convert-nwm``, docs/datasets/nwm.md) holds 10,907 RouteLink reaches with 30
lakes collapsed onto their outlet reaches and 28 hourly CHRTOUT rows. Three runs of the project's
numba engine over the same 27 hours (13:00 → 16:00 next day):

* ``nwm``: lakes as ``LevelPool(scheme="nwm")`` (NWM's ``LEVELPOOL_PHYSICS`` literally, one RK3
  step per routing step as WRF-Hydro calls it);
* ``conservative``: lakes as ``LevelPool(scheme="conservative")`` (the engine's default: mass
  closes per step);
* ``channels``: the same network with lakes routed as Muskingum–Cunge channels (``lakes=None``).

Set-up, the same for the three runs:

* routing step ``--dt`` 300 s, ``3600/dt`` steps per hourly row of Q′ (NWM's channel step is
  300 s and WRF-Hydro calls the level pool every channel step); Q′ = CHRTOUT ``q_lateral`` of the
  hour ending at the next row's time (the store's row 0 drives the hour before the start, unused);
* initial discharge = CHRTOUT ``streamflow`` at 13:00 (row 0; at a lake's outlet its outflow);
* initial lake elevation = the elevation whose level-pool outflow equals that first outflow
  (``routing.lakes.elevation_for_outflow``: NWM's lakes are not at the ``ifd`` 0.9 of ``lakes.parquet``);
* channel: RouteLink ``Length``, ``So`` (floored at the engine's ``s_min``), ``n``; depth from the
  engine's power-law rating with ``p`` = ``BtmWdth`` and ``q`` = 0 (Manning depth of a wide
  rectangle of NWM's bottom width), velocity in the trapezoid of top width ``TopWdth`` and side
  slope ``ChSlp``; Cunge's X from the flow (``x_mode="cunge"``, RouteLink ``MusX`` is not used by
  NWM either) and the trapezoid's exact celerity (``celerity="exact"``), as NWM's MC kernel.

Reported, per run, for the lake outlets, the reaches below them, gauge 08135000 (below lake
120053389) and all reaches: max / median absolute and relative difference from CHRTOUT
``streamflow`` over the 27 hourly states after the start (relative only where CHRTOUT ≥
``--rel-floor``); per lake: the starting elevation, its drift, the per-step mass residual
(storage change − (in − out)·dt) and the outlet's difference; wall time of each routing call
(kernels compiled before timing) and the load. Writes ``nwm_lakes_compare.csv`` (groups),
``nwm_lakes_compare_lakes.csv`` (lakes) and ``nwm_lakes_compare.md`` (both as tables) under
``--out``. docs/results.md, "NWM domain with lakes (LowerColorado_TX)", explains the numbers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ddr_pipeline.data import io, schema
from ddr_pipeline.data.lakes import read_lakes
from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import muskingum_cunge
from ddr_pipeline.routing.lakes import LAKE_PARAMS, LevelPool, elevation_for_outflow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "01_raw" / "nwm_lower_colorado"
OUT = ROOT / "benchmarks" / "results"
STEM = "nwm_lakes_compare"
GAUGE = "08135000"
RUNS = ("nwm", "conservative", "channels")
#: ``--rating-width`` -> the reaches column used as the rating's width coefficient p.
RATING_WIDTHS = {"bottom": "bottom_width", "top": "top_width"}
F64 = torch.float64
S_MIN = 1e-5  # RouteLink's smallest So (NWM uses So as given; the engine floors at 1e-4)
logger = logging.getLogger("nwm_lakes_compare")


@dataclass(frozen=True)
class Domain:
    """An NWM domain in the network's (user) order.

    Attributes:
        net: the river network.
        reaches: validated reaches table, rows in ``net.ids`` order.
        lakes: validated lakes table plus ``index`` (user index of the outlet reach).
        qlat: (H, N) hourly Q′ (m³/s), row h = the hour ending at ``times[h]``.
        reference: (H, N) CHRTOUT streamflow (m³/s) at ``times``.
        times: (H,) datetime64 valid times.
        gauges: validated gauges table.
    """

    net: RiverNetwork
    reaches: pd.DataFrame
    lakes: pd.DataFrame
    qlat: np.ndarray
    reference: np.ndarray
    times: np.ndarray
    gauges: pd.DataFrame


@dataclass(frozen=True)
class Run:
    """One routing of a :class:`Domain`: hourly states after the start and the lakes' side."""

    hourly: np.ndarray  # (H−1, N) states at times[1:]
    lakes: object  # LakeResult or None
    wall_s: float


def _hourly_store(folder: Path, store: str, variable: str, ids: np.ndarray) -> tuple:
    ds = schema.validate_hourly(io.read_zarr(folder / store), variable, ids, schema.DIVIDE_DIM,
                                store)  # fmt: skip
    da = ds[variable].transpose(schema.TIME_DIM, schema.DIVIDE_DIM)
    values = da.to_numpy().astype(np.float64)
    if np.isnan(values).any():
        col = int(np.flatnonzero(np.isnan(values).any(0))[0])
        raise ValueError(f"{store}: NaN {variable} at reach id {int(ids[col])}")
    return values, ds[schema.TIME_DIM].to_numpy()


def load_domain(folder: Path = DATA) -> Domain:
    """Read and validate an NWM folder written by ``ddr-convert-nwm``."""
    reaches = schema.validate_reaches(io.read_table(folder / schema.REACHES_FILE))
    net = RiverNetwork.from_ids(reaches[schema.ID_COL], reaches[schema.TO_ID_COL])
    ids = net.ids
    lakes = read_lakes(folder, ids)
    if lakes is None:
        raise FileNotFoundError(f"{folder}: no {schema.LAKES_FILE}: nothing to compare")
    lakes = lakes.assign(index=net.index_of(lakes[schema.LAKE_REACH_COL].to_numpy()))
    qlat, times = _hourly_store(folder, schema.LATERAL_INFLOW_HOURLY_STORE,
                                schema.LATERAL_INFLOW_VAR, ids)  # fmt: skip
    ref, ref_times = _hourly_store(folder, schema.REFERENCE_HOURLY_STORE, schema.REFERENCE_VAR,
                                   ids)  # fmt: skip
    if not np.array_equal(times, ref_times):
        raise ValueError(f"{folder}: lateral inflow and reference stores have different times")
    gauges = schema.validate_gauges(io.read_table(folder / schema.GAUGES_FILE), ids)
    return Domain(net, reaches.reset_index(drop=True), lakes, qlat, ref, times, gauges)


def upstream_subset(domain: Domain, lake_id: int) -> Domain:
    """The upstream closure of one lake's outlet reach (with every lake inside it)."""
    hit = domain.lakes[schema.LAKE_ID_COL].to_numpy() == lake_id
    if not hit.any():
        raise KeyError(f"lake_id {lake_id} is not in the lakes table")
    closure = domain.net.upstream_closure(int(domain.lakes["index"].to_numpy()[hit][0]))
    sub, index_map = domain.net.subnetwork(closure)
    position = np.full(domain.net.n_reaches, -1, np.int64)
    position[index_map] = np.arange(index_map.size)
    lakes = domain.lakes.assign(index=position[domain.lakes["index"].to_numpy()])
    lakes = lakes[lakes["index"] >= 0].reset_index(drop=True)
    on = domain.gauges[schema.REACH_IDS_COL].map(lambda r: bool(np.isin(r, sub.ids).all()))
    return Domain(sub, domain.reaches.iloc[index_map].reset_index(drop=True), lakes,
                  domain.qlat[:, index_map], domain.reference[:, index_map], domain.times,
                  domain.gauges[on.to_numpy(dtype=bool)].reset_index(drop=True))  # fmt: skip


# ------------------------------------------------------------------ level pool, initial state
def lake_parameters(lakes: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each name of :data:`LAKE_PARAMS` -> (L,) float64 values of the lakes table."""
    return {k: lakes[k].to_numpy(np.float64) for k in LAKE_PARAMS}


def level_pool(domain: Domain, scheme: str) -> tuple[LevelPool, np.ndarray]:
    """The domain's lakes for the engine, started where they pass CHRTOUT's first outflow."""
    par = lake_parameters(domain.lakes)
    idx = domain.lakes["index"].to_numpy()
    h0 = elevation_for_outflow(domain.reference[0, idx], par, domain.lakes[schema.LAKE_ID_COL])
    tensors = {k: torch.tensor(v, dtype=F64) for k, v in par.items()}
    return LevelPool(idx, tensors, torch.tensor(h0, dtype=F64), scheme=scheme, substeps=1), h0


# ------------------------------------------------------------------ routing
def channel_inputs(reaches: pd.DataFrame, rating_width: str = "bottom") -> tuple[dict, dict]:
    """(channel, params) of ``muskingum_cunge`` from RouteLink's columns (module docstring);
    the rating's width coefficient p is ``BtmWdth`` (``rating_width="bottom"``) or ``TopWdth``
    (``"top"``, the sensitivity run)."""
    if rating_width not in RATING_WIDTHS:
        raise ValueError(f"rating_width must be one of {list(RATING_WIDTHS)}, got {rating_width!r}")
    names = ("length_m", "slope", "x", "mann_n", "top_width", "side_slope", "bottom_width")
    col = {c: torch.tensor(reaches[c].to_numpy(np.float64), dtype=F64) for c in names}
    channel = {"length": col["length_m"], "slope": col["slope"], "x": col["x"]}
    params = {"n": col["mann_n"], "q_spatial": 0.0, "p": col[RATING_WIDTHS[rating_width]],
              "top_width": col["top_width"], "side_slope": col["side_slope"]}  # fmt: skip
    return channel, params


def route(
    domain: Domain, run: str, *, dt: float = 300.0, hours: int | None = None,
    threads: int | None = None, rating_width: str = "bottom",
) -> Run:  # fmt: skip
    """Route ``hours`` hourly rows (default all after the first) as ``run`` (:data:`RUNS`)."""
    if run not in RUNS:
        raise ValueError(f"run must be one of {list(RUNS)}, got {run!r}")
    steps = round(3600.0 / dt)
    if steps < 1 or steps * dt != 3600.0:
        raise ValueError(f"dt must divide 3600 s, got {dt}")
    n_h = domain.qlat.shape[0] - 1 if hours is None else hours
    lakes = None if run == "channels" else level_pool(domain, run)[0]
    channel, params = channel_inputs(domain.reaches, rating_width)
    start = time.perf_counter()
    res = muskingum_cunge(
        domain.net, torch.from_numpy(domain.qlat[1 : n_h + 1]), channel, params, dt=dt,
        substeps=steps, initial_state=torch.from_numpy(domain.reference[0]), x_mode="cunge",
        celerity="exact", s_min=S_MIN, threads=threads, lakes=lakes, backend="numba",
        return_diagnostics=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    return Run(res.discharge[steps::steps].numpy(), res.lakes, wall)


# ------------------------------------------------------------------ metrics
def groups(domain: Domain) -> dict[str, np.ndarray]:
    """Reach groups of the comparison: lake outlets, the reaches below them, the gauge, all."""
    outlets = domain.lakes["index"].to_numpy()
    below = domain.net.downstream_index[outlets]
    out = {"lake outlets": outlets, "below lakes": np.unique(below[below >= 0])}
    hit = domain.gauges[schema.STAID_COL] == GAUGE
    if hit.any():
        out[f"gauge {GAUGE}"] = domain.net.index_of(domain.gauges.loc[hit, schema.REACH_IDS_COL]
                                                    .iloc[0])  # fmt: skip
    out["all reaches"] = np.arange(domain.net.n_reaches)
    return out


def differences(sim: np.ndarray, ref: np.ndarray, rel_floor: float) -> dict[str, float]:
    """Max / median absolute (m³/s) and relative differences over all (hour, reach) cells, the
    relative ones where ``ref >= rel_floor``; mean signed difference (bias); the column and
    hour (1 = the first hour after the start) of the largest absolute difference."""
    diff = sim - ref
    absd = np.abs(diff)
    hour, col = np.unravel_index(int(absd.argmax()), absd.shape)
    keep = ref >= rel_floor
    rel = absd[keep] / ref[keep]
    nan = float("nan")
    return {
        "max_abs": float(absd.max()),
        "median_abs": float(np.median(absd)),
        "bias": float(diff.mean()),
        "max_rel": float(rel.max()) if rel.size else nan,
        "median_rel": float(np.median(rel)) if rel.size else nan,
        "n_rel": int(rel.size),
        "worst_col": int(col),
        "worst_hour": int(hour) + 1,
    }


def group_table(domain: Domain, runs: dict[str, Run], rel_floor: float) -> pd.DataFrame:
    """One row per (run, group): :func:`differences` over the hours after the first, with the
    reach id of the largest difference (``worst_id``) and the run's wall time."""
    ref = domain.reference[1 : 1 + next(iter(runs.values())).hourly.shape[0]]
    rows = []
    for name, run in runs.items():
        for group, idx in groups(domain).items():
            diff = differences(run.hourly[:, idx], ref[:, idx], rel_floor)
            worst = idx[diff.pop("worst_col")]
            rows.append({"run": name, "group": group, "n_reaches": int(idx.size), **diff,
                         "worst_id": int(domain.net.ids[worst]), "wall_s": run.wall_s})  # fmt: skip
    return pd.DataFrame(rows)


def mass_residual(lakes: object) -> np.ndarray:
    """(T, L) storage change − (in − out)·dt of every step (m³)."""
    return (lakes.storage_change() - lakes.net_inflow_volume()).numpy()


def chrtout_lake_budget(domain: Domain, n_h: int) -> pd.DataFrame:
    """NWM's own lake budget over rows 0..``n_h``: its inflow (CHRTOUT streamflow of the reaches
    draining into the lake + its Q′), the net inflow volume (trapezoid over the hours, m³) and
    the storage change that CHRTOUT's outflow change implies for the level pool of
    ``lakes.parquet`` (A·ΔH, H inverted from the first and last outflow, m³). The two agree
    where NWM ran this level pool on these flows (up to the 0.01 m³/s packing of the flows)."""
    idx = domain.lakes["index"].to_numpy()
    down = domain.net.downstream_index
    ref = domain.reference[: n_h + 1]
    upstream = np.zeros_like(ref)
    np.add.at(upstream, (slice(None), down[down >= 0]), ref[:, down >= 0])
    net_in = upstream[:, idx] + domain.qlat[: n_h + 1, idx] - ref[:, idx]
    par = lake_parameters(domain.lakes)
    ends = {k: np.concatenate([v, v]) for k, v in par.items()}
    h = elevation_for_outflow(np.concatenate([ref[0, idx], ref[n_h, idx]]), ends).reshape(2, -1)
    return pd.DataFrame({
        "chrtout_inflow_mean": (upstream[:, idx] + domain.qlat[: n_h + 1, idx]).mean(0),
        "chrtout_net_in_m3": 0.5 * (net_in[1:] + net_in[:-1]).sum(0) * 3600.0,
        "chrtout_storage_m3": par["area_km2"] * 1e6 * (h[1] - h[0]),
    })  # fmt: skip


def _lake_start(domain: Domain, h0: np.ndarray, n_h: int) -> pd.DataFrame:
    lk = domain.lakes
    idx = lk["index"].to_numpy()
    par = lake_parameters(lk)
    active = par["max_elevation"] - par["orifice_elevation"]
    return pd.DataFrame({
        "lake_id": lk[schema.LAKE_ID_COL].to_numpy(),
        "reach_id": lk[schema.LAKE_REACH_COL].to_numpy(),
        "type": lk.get("nwm_reservoir_type", pd.Series(-1, index=lk.index)).to_numpy(),
        "area_km2": par["area_km2"], "q0_chrtout": domain.reference[0, idx],
        "q_end_chrtout": domain.reference[n_h, idx], "h0": h0,
        "h0_ifd": (h0 - par["orifice_elevation"]) / active,
    })  # fmt: skip


def lake_table(domain: Domain, runs: dict[str, Run], h0: np.ndarray) -> pd.DataFrame:
    """One row per lake: its start (``h0_ifd``: the starting elevation as NWM's fractional
    depth, > 1 above the max elevation), NWM's own budget (:func:`chrtout_lake_budget`), and
    per run the elevation drift, mass residual per step (max, sum; relative to the step's
    larger of in and out volume) and the outlet's flow at the end and largest difference."""
    idx = domain.lakes["index"].to_numpy()
    n_h = next(iter(runs.values())).hourly.shape[0]
    out = pd.concat([_lake_start(domain, h0, n_h), chrtout_lake_budget(domain, n_h)], axis=1)
    for name in ("nwm", "conservative"):
        lr = runs[name].lakes
        res = mass_residual(lr)
        vol = (np.maximum(lr.inflow.numpy(), lr.outflow.numpy()) * lr.dt).max(0)
        h = lr.elevation.detach().numpy()
        out[f"{name}_drift_m"] = h[-1] - h[0]
        out[f"{name}_resid_max_m3"] = np.abs(res).max(0)
        out[f"{name}_resid_sum_m3"] = res.sum(0)
        out[f"{name}_resid_rel"] = out[f"{name}_resid_max_m3"] / np.maximum(vol, 1e-300)
    ref = domain.reference[1 : n_h + 1, idx]
    for name, run in runs.items():
        out[f"{name}_q_end"] = run.hourly[-1, idx]
        out[f"{name}_max_abs"] = np.abs(run.hourly[:, idx] - ref).max(0)
    return out


# ------------------------------------------------------------------ outputs
def _md(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(header: str, table: pd.DataFrame, lakes: pd.DataFrame) -> str:
    """The two tables as markdown, under ``header``."""
    lake_cols = ["lake_id", "type", "area_km2", "q0_chrtout", "q_end_chrtout", "h0_ifd",
                 "chrtout_net_in_m3", "chrtout_storage_m3", "nwm_drift_m",
                 "nwm_resid_max_m3", "nwm_resid_rel", "conservative_drift_m",
                 "conservative_resid_max_m3", "conservative_resid_rel", "nwm_max_abs",
                 "conservative_max_abs", "channels_max_abs"]  # fmt: skip
    lake_view = lakes.sort_values("area_km2", ascending=False)[lake_cols]
    return (f"{header}\n\n### Differences from CHRTOUT streamflow (m³/s; relative where CHRTOUT "
            f"≥ floor)\n\n{_md(table)}\n\n### Lakes (volumes m³, drift m, residual m³ per "
            f"step, max |Δ| at the outlet m³/s)\n\n{_md(lake_view)}\n")  # fmt: skip


def compare(domain: Domain, repeats: int = 3, **opts: object) -> dict[str, Run]:
    """The three runs of :data:`RUNS` (``opts``: :func:`route`'s options), each after a one-hour
    call that compiles it, repeated ``repeats`` times: the last result with the median wall."""
    runs = {}
    for name in RUNS:
        route(domain, name, hours=1, **opts)
        done = [route(domain, name, **opts) for _ in range(max(repeats, 1))]
        walls = [r.wall_s for r in done]
        runs[name] = Run(done[-1].hourly, done[-1].lakes, float(np.median(walls)))
        logger.info("%s: median %.2f s, min %.2f s", name, np.median(walls), min(walls))
    return runs


def output_stem(dt: float, rating_width: str) -> str:
    """File stem of a run's outputs: :data:`STEM`, plus the options that differ from the
    defaults (a sensitivity run does not overwrite the default's files)."""
    extra = ("" if dt == 300.0 else f"_dt{dt:g}") + ("" if rating_width == "bottom" else
                                                     f"_p{rating_width}")  # fmt: skip
    return STEM + extra


def _parser() -> argparse.ArgumentParser:
    head, _, rest = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(description=head, epilog=rest,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", type=Path, default=DATA, help="folder from ddr-convert-nwm")
    p.add_argument("--out", type=Path, default=OUT, help="where the CSVs and markdown go")
    p.add_argument("--dt", type=float, default=300.0, help="routing step (s), divides 3600")
    p.add_argument("--rel-floor", type=float, default=0.1,
                   help="relative differences only where CHRTOUT >= this (m³/s)")  # fmt: skip
    p.add_argument(
        "--rating-width",
        choices=sorted(RATING_WIDTHS),
        default="bottom",
        help="width coefficient p of the depth rating: BtmWdth or TopWdth",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed calls per run (median)")
    p.add_argument("--threads", type=int, default=None, help="engine threads (default: torch's)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    domain = load_domain(args.data)
    runs = compare(domain, args.repeats, dt=args.dt, threads=args.threads,
                   rating_width=args.rating_width)  # fmt: skip
    table = group_table(domain, runs, args.rel_floor)
    lakes = lake_table(domain, runs, level_pool(domain, "nwm")[1])
    total = time.perf_counter() - start
    load = f"load {load0:.2f} → {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    header = (f"{domain.net.n_reaches} reaches, {len(domain.lakes)} lakes, "
              f"{runs['nwm'].hourly.shape[0]} h, dt {args.dt:g} s, p = {args.rating_width} "
              f"width; relative differences where CHRTOUT ≥ {args.rel_floor:g} m³/s; script "
              f"wall {total:.1f} s (reading, compiling, {args.repeats} calls per run; wall_s = "
              f"median routing call), {load}")  # fmt: skip
    stem = output_stem(args.dt, args.rating_width)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / f"{stem}.csv", index=False)
    lakes.to_csv(args.out / f"{stem}_lakes.csv", index=False)
    (args.out / f"{stem}.md").write_text(markdown(header, table, lakes))
    print(header)
    print(_md(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
