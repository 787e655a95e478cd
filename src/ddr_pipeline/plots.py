"""Matplotlib figures for evaluation and routing results.

Every function builds and returns a :class:`matplotlib.figure.Figure` created without pyplot (no
global figure registry, no GUI backend, safe in pipelines and tests); save it with
``fig.savefig(path)`` or through the Kedro dataset ``ddr_pipeline.datasets.AtomicMatplotlibDataset``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: Metrics shown in the default boxplot panel and their axis labels.
BOXPLOT_METRICS: dict[str, str] = {
    "bias": "bias (m³/s)",
    "rmse": "RMSE (m³/s)",
    "fhv": "FHV (%)",
    "flv": "FLV (%)",
    "nse": "NSE (-)",
    "kge": "KGE (-)",
}


def _finite(values: pd.Series | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


def plot_metric_cdf(
    tables: Mapping[str, pd.DataFrame],
    metric: str = "nse",
    xlim: tuple[float, float] = (-1.0, 1.0),
) -> Figure:
    """Empirical CDF of one per-gauge metric for several models (one line per table).

    Values outside ``xlim`` are kept in the CDF (the curve is clipped, not the data); the legend
    shows each model's median and gauge count.
    """
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for name, table in tables.items():
        values = np.sort(_finite(table[metric]))
        if values.size == 0:
            continue
        frac = np.arange(1, values.size + 1) / values.size
        label = f"{name} (median {np.median(values):.2f}, n={values.size})"
        ax.step(values, frac, where="post", label=label)
    ax.set(xlim=xlim, ylim=(0, 1), xlabel=metric.upper(), ylabel="fraction of gauges")
    ax.set_title(f"{metric.upper()} CDF")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_metric_boxplots(
    tables: Mapping[str, pd.DataFrame],
    metrics: Mapping[str, str] | None = None,
    clip_quantiles: tuple[float, float] = (0.02, 0.98),
) -> Figure:
    """Boxplots of per-gauge metrics, one panel per metric, one box per model.

    Whiskers span the 5th-95th percentiles; fliers are hidden and the y-axis is limited to the
    ``clip_quantiles`` range of all models so a few extreme gauges do not flatten the boxes.
    """
    metrics = dict(metrics or BOXPLOT_METRICS)
    ncols = 3
    nrows = int(np.ceil(len(metrics) / ncols))
    fig = Figure(figsize=(4 * ncols, 3.5 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    names = list(tables)
    for ax, (metric, label) in zip(axes, metrics.items(), strict=False):
        data = [_finite(tables[name][metric]) for name in names]
        ax.boxplot(data, tick_labels=names, whis=(5, 95), showfliers=False)
        pooled = np.concatenate([d for d in data if d.size] or [np.zeros(1)])
        low, high = np.quantile(pooled, clip_quantiles)
        if high > low:
            pad = 0.05 * (high - low)
            ax.set_ylim(low - pad, high + pad)
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelrotation=20)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    return fig


def select_gauges(
    table: pd.DataFrame,
    metric: str = "nse",
    chosen: Sequence[str] = (),
) -> dict[str, str]:
    """Pick gauges to plot: the ``chosen`` ids plus the best, median and worst by ``metric``.

    Returns ``{label: gage_id}``; labels are ``chosen <id>``, ``best``, ``median``, ``worst``.
    Unknown chosen ids raise a ``KeyError`` naming them.
    """
    missing = [g for g in chosen if g not in table.index]
    if missing:
        raise KeyError(f"chosen gauges not in the metrics table: {missing}")
    picks = {f"chosen {g}": str(g) for g in chosen}
    ranked = table[metric].astype(np.float64).replace([np.inf, -np.inf], np.nan).dropna()
    ranked = ranked.sort_values(ascending=False)
    if not ranked.empty:
        picks["best"] = str(ranked.index[0])
        picks["median"] = str(ranked.index[len(ranked) // 2])
        picks["worst"] = str(ranked.index[-1])
    return picks


def plot_hydrographs(
    observations: xr.DataArray,
    simulations: Mapping[str, xr.DataArray],
    gauges: Mapping[str, str],
    scores: pd.DataFrame | None = None,
    metric: str = "nse",
) -> Figure:
    """Observed vs simulated daily discharge at selected gauges (one panel per gauge).

    ``observations`` and each simulation are ``(gage_id, time)`` arrays; ``gauges`` maps a panel
    label to a gage id (see :func:`select_gauges`); ``scores`` (indexed by gage id, the first
    simulation's table) adds the metric to each title.
    """
    fig = Figure(figsize=(11, 2.6 * max(len(gauges), 1)), layout="constrained")
    axes = fig.subplots(max(len(gauges), 1), 1, squeeze=False).ravel()
    for ax, (label, gid) in zip(axes, gauges.items(), strict=False):
        obs = observations.sel(gage_id=gid)
        ax.plot(obs["time"].values, obs.values, color="black", lw=1.2, label="observed")
        for name, sim in simulations.items():
            if gid in sim["gage_id"].values:
                series = sim.sel(gage_id=gid)
                ax.plot(series["time"].values, series.values, lw=1.0, label=name)
        title = f"{label}: {gid}"
        if scores is not None and gid in scores.index:
            title += f"  ({metric.upper()} {scores.loc[gid, metric]:.2f})"
        ax.set_title(title, fontsize="medium")
        ax.set_ylabel("Q (m³/s)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize="x-small")
    return fig


def _scatter_map(
    ax: Axes,
    lon: np.ndarray,
    lat: np.ndarray,
    values: np.ndarray,
    label: str,
    *,
    vlim: tuple[float, float] | None = None,
    cmap: str = "viridis",
    size: float = 20.0,
) -> None:
    finite = np.isfinite(values)
    if (~finite).any():
        ax.scatter(lon[~finite], lat[~finite], s=size, c="lightgrey", marker="x", label="no value")
        ax.legend(loc="lower right", fontsize="x-small")
    vmin, vmax = vlim if vlim else (None, None)
    points = ax.scatter(
        lon[finite], lat[finite], c=values[finite], s=size, cmap=cmap, vmin=vmin, vmax=vmax
    )
    ax.figure.colorbar(points, ax=ax, label=label)
    ax.set(xlabel="longitude (°)", ylabel="latitude (°)", aspect="equal")
    ax.grid(alpha=0.3)


def plot_gauge_map(
    gauges: pd.DataFrame,
    values: pd.Series,
    label: str = "NSE",
    vlim: tuple[float, float] = (-1.0, 1.0),
) -> Figure:
    """Gauges at their ``lon``/``lat`` coloured by a per-gauge value (no basemap).

    ``gauges`` is indexed by gage id with ``lat`` and ``lon`` columns; ``values`` is indexed by gage
    id. Gauges without a finite value are drawn as grey crosses.
    """
    aligned = values.reindex(gauges.index).astype(np.float64)
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.add_subplot()
    _scatter_map(
        ax,
        gauges["lon"].to_numpy(np.float64),
        gauges["lat"].to_numpy(np.float64),
        np.clip(aligned.to_numpy(), *vlim),
        label,
        vlim=vlim,
        cmap="RdYlBu",
        size=36.0,
    )
    ax.set_title(f"{label} per gauge (values clipped to {vlim})")
    return fig


def plot_reach_maps(
    lon: np.ndarray,
    lat: np.ndarray,
    fields: Mapping[str, np.ndarray],
    log_scale: Sequence[str] = (),
) -> Figure:
    """One scatter map per per-reach field (e.g. learned parameters, mean Manning n).

    ``lon``/``lat`` are the reach representative points; fields named in ``log_scale`` are shown
    as log10.
    """
    ncols = min(3, max(len(fields), 1))
    nrows = int(np.ceil(max(len(fields), 1) / ncols))
    fig = Figure(figsize=(5 * ncols, 4.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, values) in zip(axes, fields.items(), strict=False):
        vals = np.asarray(values, dtype=np.float64)
        label = name
        if name in log_scale:
            with np.errstate(divide="ignore", invalid="ignore"):
                vals = np.log10(vals)
            label = f"log10 {name}"
        _scatter_map(ax, np.asarray(lon), np.asarray(lat), vals, label, size=12.0)
        ax.set_title(label)
    for ax in axes[len(fields) :]:
        ax.set_visible(False)
    return fig


def plot_loss_curve(history: pd.DataFrame, x: str = "step") -> Figure:
    """Training (and validation) loss against ``x`` from a training-history table.

    ``history`` has one row per mini-batch (the checkpoint's ``history`` records). Every column
    whose name contains ``loss`` is drawn (non-finite values skipped); the y-axis is logarithmic
    when all values are positive. Without an ``x`` column the row number is used.
    """
    loss_columns = [c for c in history.columns if "loss" in str(c).lower()]
    if not loss_columns:
        raise KeyError(f"no loss column in the training history (columns: {list(history.columns)})")
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    xs = history[x].to_numpy() if x in history.columns else np.arange(len(history))
    for column in loss_columns:
        values = history[column].to_numpy(np.float64)
        finite = np.isfinite(values)
        ax.plot(xs[finite], values[finite], marker="o", ms=3, label=str(column))
    positive = history[loss_columns].to_numpy(np.float64)
    if np.all(positive[np.isfinite(positive)] > 0):
        ax.set_yscale("log")
    ax.set(xlabel=x if x in history.columns else "record", ylabel="loss")
    ax.set_title("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_routing_summary(discharge: xr.DataArray, reach_ids: Sequence[int] = ()) -> Figure:
    """Routed daily discharge at chosen reaches (default: the reach with the largest mean flow).

    ``discharge`` has dims ``(reach_id, time)``. A second panel shows the distribution of the
    time-mean discharge over all routed reaches.
    """
    mean_flow = discharge.mean("time").to_series()
    ids = list(reach_ids) or [int(mean_flow.idxmax())]
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    for rid in ids:
        series = discharge.sel(reach_id=rid)
        top.plot(series["time"].values, series.values, lw=1.0, label=f"reach {rid}")
    top.set(ylabel="Q (m³/s)", title=f"routed discharge, {discharge.sizes['reach_id']} reaches")
    top.grid(alpha=0.3)
    top.legend(fontsize="small")
    positive = mean_flow[mean_flow > 0].to_numpy()
    if positive.size:
        bottom.hist(np.log10(positive), bins=40, color="tab:blue")
    bottom.set(xlabel="log10 mean discharge (m³/s)", ylabel="reaches")
    bottom.grid(alpha=0.3)
    return fig
