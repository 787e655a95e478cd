"""Matplotlib figures for evaluation and routing results.

Every function builds and returns a :class:`matplotlib.figure.Figure` created without pyplot (no
global figure registry, no GUI backend, safe in pipelines and tests); save it with
``fig.savefig(path)`` or through the Kedro dataset ``ddr_pipeline.project.datasets.AtomicMatplotlibDataset``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from ddr_pipeline import parameter_registry
from ddr_pipeline.data.geometry import ReachLines

#: Metrics shown in the default boxplot panel and their axis labels.
BOXPLOT_METRICS: dict[str, str] = {
    "bias": "bias (m³/s)",
    "rmse": "RMSE (m³/s)",
    "fhv": "FHV (%)",
    "flv": "FLV (%)",
    "nse": "NSE (-)",
    "kge": "KGE (-)",
}


#: Legend names of the model and the baselines (keys: the model names of the evaluation tables).
MODEL_LABELS: dict[str, str] = {
    "model": "trained model (KAN + LSTM + MC)",
    "summed_lateral_inflow": "no routing (summed Q')",
    "untrained": "untrained routing (mid-range parameters)",
    "initial": "model at its initial weights (before training)",
    "reference": "reference routing product",
}

#: Units of the learned / derived routing parameters (the parameter registry).
PARAMETER_UNITS: dict[str, str] = parameter_registry.units()


#: Loss axis label per ``training.loss.name``.
LOSS_LABELS: dict[str, str] = {
    "mse": "MSE loss ((m³/s)²)",
    "mae": "MAE loss (m³/s)",
    "nse": "NSE loss (1 - NSE, -)",
}


def loss_label(name: str) -> str:
    """Axis label of the training loss ``name`` (with its units)."""
    return LOSS_LABELS.get(name, f"{name} loss")


def model_label(name: str, labels: Mapping[str, str] | None = None) -> str:
    """Legend name of ``name`` (``labels`` first, then :data:`MODEL_LABELS`, else ``name``)."""
    return {**MODEL_LABELS, **(labels or {})}.get(name, name)


def parameter_label(field: str, log10: bool = False) -> str:
    """Axis label of a parameter field (``"mean n"`` -> ``"mean n (s m⁻¹ᐟ³)"``), with log10."""
    unit = PARAMETER_UNITS.get(field.rsplit(maxsplit=1)[-1], "-")
    return f"log10 {field} ({unit})" if log10 else f"{field} ({unit})"


def _finite(values: pd.Series | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


def plot_metric_cdf(
    tables: Mapping[str, pd.DataFrame],
    metric: str = "nse",
    xlim: tuple[float, float] = (-1.0, 1.0),
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Empirical CDF of one per-gauge metric for several models (one line per table).

    Values outside ``xlim`` are kept in the CDF (the curve is clipped, not the data); the legend
    shows each model's median, gauge count and how many gauges lie off the chart (left of
    ``xlim[0]``). ``labels`` maps table keys to legend names (default :data:`MODEL_LABELS`).
    """
    fig = Figure(figsize=(7, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for name, table in tables.items():
        values = np.sort(_finite(table[metric]))
        if values.size == 0:
            continue
        frac = np.arange(1, values.size + 1) / values.size
        label = f"{model_label(name, labels)} (median {np.median(values):.2f}, n={values.size}"
        below, above = int((values < xlim[0]).sum()), int((values > xlim[1]).sum())
        if below:
            label += f", {below} < {xlim[0]:g} off chart"
        if above:
            label += f", {above} > {xlim[1]:g} off chart"
        ax.step(values, frac, where="post", label=label + ")")
    ax.set(xlim=xlim, ylim=(0, 1), xlabel=f"{metric.upper()} (-)", ylabel="fraction of gauges (-)")
    ax.set_title(f"{metric.upper()} CDF over gauges (x-axis clipped at {xlim[0]:g})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize="small")
    return fig


def plot_metric_boxplots(
    tables: Mapping[str, pd.DataFrame],
    metrics: Mapping[str, str] | None = None,
    clip_quantiles: tuple[float, float] = (0.02, 0.98),
    labels: Mapping[str, str] | None = None,
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
        ticks = [textwrap.fill(model_label(name, labels), 18) for name in names]
        ax.boxplot(data, tick_labels=ticks, whis=(5, 95), showfliers=False)
        pooled = np.concatenate([d for d in data if d.size] or [np.zeros(1)])
        low, high = np.quantile(pooled, clip_quantiles)
        if high > low:
            pad = 0.05 * (high - low)
            ax.set_ylim(low - pad, high + pad)
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelsize="small")
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
    *,
    metric: str = "nse",
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Observed vs simulated daily discharge at selected gauges, linear and log scale.

    One row per gauge: a linear panel (peaks) and a log panel (recessions, low flows).
    ``observations`` and each simulation are ``(gage_id, time)`` arrays; ``gauges`` maps a row
    label to a gage id (see :func:`select_gauges`); ``scores`` (indexed by gage id, the first
    simulation's table) adds the metric to each title; ``labels`` maps simulation keys to legend
    names (default :data:`MODEL_LABELS`).
    """
    nrows = max(len(gauges), 1)
    fig = Figure(figsize=(13, 2.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, 2, squeeze=False, gridspec_kw={"width_ratios": [3, 2]})
    for row, (label, gid) in zip(axes, gauges.items(), strict=False):
        title = f"{label}: gauge {gid}"
        if scores is not None and gid in scores.index:
            title += f"  ({metric.upper()} {scores.loc[gid, metric]:.2f})"
        for ax, log in zip(row, (False, True), strict=True):
            obs = observations.sel(gage_id=gid)
            ax.plot(obs["time"].values, obs.values, color="black", lw=1.2, label="observed")
            for name, sim in simulations.items():
                if gid in sim["gage_id"].values:
                    series = sim.sel(gage_id=gid)
                    ax.plot(series["time"].values, series.values, lw=1.0, label=model_label(name, labels))
            ax.set_ylabel("discharge (m³/s)")
            ax.grid(alpha=0.3, which="both" if log else "major")
            if log:
                ax.set_yscale("log")
                ax.set_title("log scale", fontsize="small")
            else:
                ax.set_title(title, fontsize="medium")
                ax.legend(loc="upper right", fontsize="x-small")
    return fig


def plot_ensemble_hydrographs(  # noqa: PLR0917 (one argument per array)
    dates: pd.DatetimeIndex,
    members: np.ndarray,
    observed: np.ndarray,
    staids: Sequence[str],
    gauges: Mapping[str, str],
    scores: pd.DataFrame | None = None,
) -> Figure:
    """Observed daily discharge, the ensemble mean and the members' min–max band at selected
    gauges. ``members`` is ``(K, G, D)``, ``observed`` ``(G, D)``, both ordered like ``staids``;
    ``gauges`` maps a panel label to a STAID; ``scores`` (indexed by STAID, columns ``nse`` and
    optionally ``band_coverage``) adds the ensemble mean's NSE to each title."""
    column = {s: i for i, s in enumerate(staids)}
    fig = Figure(figsize=(11, 2.6 * max(len(gauges), 1)), layout="constrained")
    axes = fig.subplots(max(len(gauges), 1), 1, squeeze=False).ravel()
    for ax, (label, gid) in zip(axes, gauges.items(), strict=False):
        g = column[gid]
        ax.fill_between(dates, members[:, g].min(axis=0), members[:, g].max(axis=0),
                        color="tab:blue", alpha=0.3, lw=0,
                        label=f"members (K={members.shape[0]}) min–max")  # fmt: skip
        ax.plot(dates, members[:, g].mean(axis=0), color="tab:blue", lw=1.0, label="ensemble mean")
        ax.plot(dates, observed[g], color="black", lw=1.0, label="observed")
        title = f"{label}: {gid}"
        if scores is not None and gid in scores.index:
            title += f"  (NSE {scores.loc[gid, 'nse']:.2f}"
            if "band_coverage" in scores.columns:
                title += f", {100 * scores.loc[gid, 'band_coverage']:.0f} % of days in band"
            title += ")"
        ax.set_title(title, fontsize="medium")
        ax.set_ylabel("Q (m³/s)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize="x-small")
    return fig


def _draw_network(ax: Axes, lines: ReachLines | None, **style: object) -> None:
    """Draw reach lines (grey by default) under the map's data."""
    if lines is not None and len(lines.segments):
        kwargs = {"colors": "0.75", "linewidths": 0.6, "zorder": 0} | style
        ax.add_collection(LineCollection(list(lines.segments), **kwargs), autolim=True)
        ax.autoscale_view()


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
    lines: ReachLines | None = None,
) -> None:
    _draw_network(ax, lines)
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
    label: str = "NSE (-)",
    vlim: tuple[float, float] = (-1.0, 1.0),
    lines: ReachLines | None = None,
) -> Figure:
    """Gauges at their ``lon``/``lat`` coloured by a per-gauge value, over the river network.

    ``gauges`` is indexed by gage id with ``lat`` and ``lon`` columns; ``values`` is indexed by gage
    id. Gauges without a finite value are drawn as grey crosses; ``lines`` (reach geometries,
    e.g. :func:`ddr_pipeline.data.geometry.reach_lines`) are drawn in grey underneath.
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
        lines=lines,
    )
    ax.set_title(f"{label} per gauge (colours clipped to {vlim[0]:g}..{vlim[1]:g})")
    return fig


def plot_reach_maps(
    lon: np.ndarray,
    lat: np.ndarray,
    fields: Mapping[str, np.ndarray],
    log_scale: Sequence[str] = (),
    lines: ReachLines | None = None,
) -> Figure:
    """One map per per-reach field (e.g. learned parameters, mean Manning n), with units.

    With ``lines`` (their ``owner`` indexes the field arrays) each reach is drawn as its line
    coloured by the value; otherwise as a point at ``lon``/``lat`` (its representative point). Fields named in ``log_scale`` are shown as log10; colour-bar labels carry the units of
    :data:`PARAMETER_UNITS`.
    """
    ncols = min(3, max(len(fields), 1))
    nrows = int(np.ceil(max(len(fields), 1) / ncols))
    fig = Figure(figsize=(5 * ncols, 4.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, values) in zip(axes, fields.items(), strict=False):
        vals = np.asarray(values, dtype=np.float64)
        log10 = name in log_scale
        if log10:
            with np.errstate(divide="ignore", invalid="ignore"):
                vals = np.log10(vals)
        label = parameter_label(name, log10)
        if lines is not None:
            _line_map(ax, lines, vals, label)
        else:
            _scatter_map(ax, np.asarray(lon), np.asarray(lat), vals, label, size=12.0)
        ax.set_title(f"log10 {name}" if log10 else name)
    for ax in axes[len(fields) :]:
        ax.set_visible(False)
    return fig


def _line_map(ax: Axes, lines: ReachLines, values: np.ndarray, label: str) -> None:
    """Reach lines coloured by ``values`` (reaches without a finite value in light grey)."""
    part_values = values[lines.owner]
    finite = np.isfinite(part_values)
    segments = list(lines.segments)
    missing = [seg for seg, ok in zip(segments, finite, strict=True) if not ok]
    _draw_network(ax, ReachLines(missing, np.zeros(len(missing), np.int64)))
    coloured = LineCollection(
        [seg for seg, ok in zip(segments, finite, strict=True) if ok], cmap="viridis", linewidths=1.2
    )
    coloured.set_array(part_values[finite])
    ax.add_collection(coloured, autolim=True)
    ax.autoscale_view()
    ax.figure.colorbar(coloured, ax=ax, label=label)
    ax.set(xlabel="longitude (°)", ylabel="latitude (°)", aspect="equal")
    ax.grid(alpha=0.3)


def plot_loss_curve(
    history: pd.DataFrame,
    x: str = "step",
    loss_label: str = "loss",
    validation: str = "val_nse_median",
) -> Figure:
    """Training loss per mini-batch with epoch means, epoch marks and the validation metric.

    ``history`` has one row per mini-batch (the checkpoint's ``history`` records). Every column
    whose name contains ``loss`` is drawn (non-finite values skipped); with an ``epoch`` column
    the epoch means are drawn as steps and each epoch start is marked; a ``validation`` column
    (held-out gauges, recorded when validation ran) is drawn on a second axis. The loss axis is
    logarithmic when all values are positive. Without an ``x`` column the row number is used.
    """
    loss_columns = [c for c in history.columns if "loss" in str(c).lower()]
    if not loss_columns:
        raise KeyError(f"no loss column in the training history (columns: {list(history.columns)})")
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    xs = history[x].to_numpy() if x in history.columns else np.arange(len(history))
    for column in loss_columns:
        values = history[column].to_numpy(np.float64)
        finite = np.isfinite(values)
        ax.plot(xs[finite], values[finite], marker="o", ms=2.5, lw=0.8, alpha=0.6,
                label=f"{column} per mini-batch")
    if "epoch" in history.columns:
        _mark_epochs(ax, history, xs, loss_columns[0])
    positive = history[loss_columns].to_numpy(np.float64)
    if np.all(positive[np.isfinite(positive)] > 0):
        ax.set_yscale("log")
    ax.set(xlabel="mini-batch" if x in history.columns else "record", ylabel=loss_label)
    ax.set_title("training loss and held-out validation")
    ax.grid(alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    if validation in history.columns and history[validation].notna().any():
        val = history[validation].to_numpy(np.float64)
        has = np.isfinite(val)
        right = ax.twinx()
        (line,) = right.plot(xs[has], val[has], color="tab:red", marker="s", ms=4,
                             label=f"validation {validation.removeprefix('val_')} (-)")
        right.set_ylabel(f"validation {validation.removeprefix('val_')} (-)", color="tab:red")
        handles.append(line)
        names.append(line.get_label())
    ax.legend(handles, names, fontsize="small", loc="upper right")
    return fig


def _mark_epochs(ax: Axes, history: pd.DataFrame, xs: np.ndarray, column: str) -> None:
    """Dashed lines at each epoch start and the epoch-mean loss as steps."""
    epochs = history["epoch"].to_numpy()
    starts = np.flatnonzero(np.r_[True, epochs[1:] != epochs[:-1]])
    for position in starts[1:]:
        ax.axvline(xs[position], color="0.5", ls="--", lw=0.8)
    for position in starts:
        ax.annotate(f"epoch {epochs[position]}", (xs[position], 1.0), xycoords=("data", "axes fraction"),
                    fontsize="x-small", va="top", ha="left", color="0.4")
    means = history.groupby("epoch", sort=False)[column].mean().to_numpy(np.float64)
    ends = np.r_[starts[1:], len(xs)] - 1
    ax.hlines(means, xs[starts], xs[ends], color="black", lw=2.0, label="epoch mean")


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
    top.set(
        ylabel="discharge (m³/s, log scale)",
        title=f"routed daily discharge ({discharge.sizes['reach_id']} reaches routed)",
        yscale="log",
    )
    top.grid(alpha=0.3)
    top.legend(fontsize="small")
    positive = mean_flow[mean_flow > 0].to_numpy()
    if positive.size:
        bottom.hist(np.log10(positive), bins=40, color="tab:blue")
    bottom.set(xlabel="log10 of the time-mean discharge (m³/s)", ylabel="number of reaches")
    bottom.grid(alpha=0.3)
    return fig
