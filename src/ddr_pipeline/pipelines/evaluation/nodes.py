"""Nodes of the ``evaluation`` pipeline: thin wrappers around inference, baselines, metrics, plots.

Flow: load the trained model and check it against the data -> route the test period (after a
warm-up) at every gauge in time chunks carrying state -> baselines on the same gauges and days ->
``model_test.zarr`` -> per-gauge metrics per model and subset -> comparison table, MLflow
metrics, figures.
"""

from __future__ import annotations

import logging
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from ddr_pipeline import __version__, baselines, inference, metrics, plots
from ddr_pipeline.config import load_training_config
from ddr_pipeline.data.batching import GaugeSet, ModelInputs
from ddr_pipeline.data.schema import STREAMFLOW_VAR, UNITS, format_values
from ddr_pipeline.training.checkpoints import CheckpointError, LoadedCheckpoint, check_compatible

logger = logging.getLogger(__name__)

MODEL = "model"
SUMMED = "summed_lateral_inflow"
UNTRAINED = "untrained"
REFERENCE = "reference"
#: Subsets of gauges every model is summarised on.
SUBSETS = ("all", "well_observed", "train", "validation", "train_well", "validation_well")


def load_trained_model(model_params: dict[str, Any], run_name: str) -> LoadedCheckpoint:
    """Load the model named by ``evaluation.model`` (checkpoint / MLflow URI / run's latest)."""
    return inference.load_model(
        checkpoint=model_params.get("checkpoint"),
        run_name=run_name,
        mlflow_model_uri=model_params.get("mlflow_model_uri"),
        models_dir=model_params["models_dir"],
    )


def check_model_against_data(  # noqa: PLR0917 (Kedro passes node inputs positionally)
    ckpt: LoadedCheckpoint,
    model_inputs: xr.Dataset,
    normalization_stats: dict[str, Any],
    geodataset: str,
    training_params: dict[str, Any] | None = None,
    check_training_parameters: bool = False,
) -> ModelInputs:
    """Fail with every difference between the checkpoint and the data; return the inputs.

    Checked: geodataset, attribute / forcing names and order, normalisation statistics and (with
    ``check_training_parameters``) the model-defining keys of the current ``training``
    parameters (resume-only keys such as epochs are ignored).
    """
    inputs = ModelInputs.from_dataset(model_inputs)
    if ckpt.config.geodataset != geodataset:
        raise CheckpointError(
            f"checkpoint was trained on geodataset {ckpt.config.geodataset!r}, "
            f"evaluation data is {geodataset!r}"
        )
    use_current = check_training_parameters and training_params
    config = load_training_config(training_params) if use_current else ckpt.config
    check_compatible(
        ckpt.payload, config, inputs.attribute_names, inputs.forcing_names, normalization_stats
    )
    return inputs


def _period(params: dict[str, Any], model_inputs: xr.Dataset) -> tuple[str, str]:
    period = params.get("period") or model_inputs.attrs.get("test_period")
    if not period or len(period) != 2:
        raise ValueError(
            "evaluation.period is not set and the model inputs carry no test_period attribute"
        )
    return str(pd.Timestamp(period[0]).date()), str(pd.Timestamp(period[1]).date())


def _gauge_set(inputs: ModelInputs, gauges: pd.DataFrame) -> GaugeSet:
    known = gauges[gauges["STAID"].astype(str).isin(inputs.gage_ids)]
    dropped = sorted(set(gauges["STAID"].astype(str)) - set(known["STAID"].astype(str)))
    if dropped:
        logger.warning("gauges without an observation series are not evaluated: %s", dropped)
    return GaugeSet.from_table(known.reset_index(drop=True), inputs, split=None)


def _as_array(
    values: np.ndarray, staids: tuple[str, ...], dates: pd.DatetimeIndex, units: str
) -> xr.DataArray:
    """``(gage_id, time)`` float32 array from ``(time, gauges)`` values."""
    return xr.DataArray(
        np.asarray(values, dtype=np.float32).T,
        dims=("gage_id", "time"),
        coords={"gage_id": np.asarray(staids, dtype=str), "time": dates},
        attrs={"units": units},
    )


def predict_test_period(  # noqa: PLR0917 (Kedro passes node inputs positionally)
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    gauges: pd.DataFrame,
    params: dict[str, Any],
    run_name: str,
    model_inputs: xr.Dataset,
) -> xr.Dataset:
    """Route the evaluation period (after ``warmup_days``) at all gauges; model + baselines.

    Returns the ``model_test.zarr`` dataset: ``predictions``, ``observations`` and one
    ``baseline_<name>`` variable per baseline, dims ``(gage_id, time)``, m³/s, with attrs
    (period, scored period, checkpoint, warm-up, gauges without observations).
    """
    start, end = _period(params, model_inputs)
    route_from, period_start = inference.spinup_start(inputs.dates, start, params["warmup_days"])
    _, stop = inputs.day_range(start, end)
    shortfall = params["warmup_days"] - (period_start - route_from)
    gauge_set = _gauge_set(inputs, gauges)
    domain = inference.gauge_domain(inputs, gauge_set.reach_index, gauge_set.flow_scale)
    settings = inference.RouteSettings(chunk_days=params["chunk_days"], device=params["device"])
    source = inference.TrainedParameters(
        ckpt.model, ckpt.config, inputs.attribute_names, inputs.forcing_names
    )
    routed = inference.route_period(inputs, domain, source, route_from, stop, settings=settings)
    keep = slice(period_start - route_from, None)
    dates = inputs.dates[period_start:stop]
    units = UNITS[STREAMFLOW_VAR]
    data = {
        "predictions": _as_array(routed.daily[keep], gauge_set.staids, dates, units),
        "observations": _as_array(
            inputs.observations[period_start:stop][:, gauge_set.obs_column],
            gauge_set.staids,
            dates,
            units,
        ),
    }
    for name, values in _baselines(
        ckpt, inputs, gauge_set, domain, params, days=slice(route_from, stop)
    ):
        data[f"baseline_{name}"] = _as_array(values[keep], gauge_set.staids, dates, units)
    scored_from = dates[min(max(shortfall, 0), len(dates) - 1)]
    ds = xr.Dataset(data)
    ds.attrs.update(
        {
            "units": units,
            "period": [start, end],
            "scored_from": str(scored_from.date()),
            "warmup_days": int(params["warmup_days"]),
            "routing_started": str(inputs.dates[route_from].date()),
            "checkpoint_epoch": int(ckpt.epoch),
            "checkpoint_mini_batch": int(ckpt.mini_batch),
            "training_run_name": run_name,
            "chunk_days": int(params["chunk_days"]),
            "ddr_pipeline_version": __version__,
            "description": "daily mean discharge: end-of-step hourly states averaged per day",
        }
    )
    ds.attrs.update(_observation_report(ds, scored_from))
    return ds


def _baselines(
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    gauge_set: GaugeSet,
    domain: inference.RoutingDomain,
    params: dict[str, Any],
    *,
    days: slice,
):
    """Yield ``(name, (days, gauges) daily values)`` of every enabled baseline."""
    cfg = params["baselines"]
    route_from, stop = days.start, days.stop
    if cfg.get(SUMMED, True):
        yield (
            SUMMED,
            baselines.summed_lateral_inflow(
                inputs.lateral_inflow[days],
                inputs.network,
                gauge_set.reach_index,
                gauge_set.flow_scale,
            ),
        )
    untrained = cfg.get(UNTRAINED) or {}
    if untrained.get("enabled", True):
        source = inference.ConstantParameters(
            ckpt.config, untrained.get("values"), inputs.attribute_names
        )
        logger.info("untrained baseline parameters: %s", source.values)
        settings = inference.RouteSettings(chunk_days=params["chunk_days"], device=params["device"])
        yield (
            UNTRAINED,
            inference.route_period(
                inputs, domain, source, route_from, stop, settings=settings
            ).daily,
        )
    reference = cfg.get(REFERENCE) or {}
    product = baselines.load_reference(reference.get("path"), reference.get("variable", "outflow"))
    if product is not None:
        reach_ids = [inputs.reach_ids[idx] for idx in gauge_set.reach_index]
        yield REFERENCE, baselines.reference_at_gauges(product, reach_ids, inputs.dates[days])


def _observation_report(ds: xr.Dataset, scored_from: pd.Timestamp) -> dict[str, Any]:
    """Gauges and days of the scored period without any observation (logged)."""
    obs = ds["observations"].sel(time=slice(scored_from, None))
    valid = np.isfinite(obs.values)
    no_obs_gauges = [str(g) for g in obs["gage_id"].values[~valid.any(axis=1)]]
    no_obs_days = pd.DatetimeIndex(obs["time"].values[~valid.any(axis=0)])
    if not valid.any():
        raise ValueError(
            f"no observations at any gauge in the evaluation period "
            f"{scored_from.date()}..{pd.Timestamp(obs['time'].values[-1]).date()}"
        )
    if no_obs_gauges:
        logger.warning(
            "%d gauges have no observation in the evaluation period (not scored): %s",
            len(no_obs_gauges),
            no_obs_gauges,
        )
    if len(no_obs_days):
        logger.warning(
            "%d days have no observation at any gauge: %s .. %s",
            len(no_obs_days),
            no_obs_days[0].date(),
            no_obs_days[-1].date(),
        )
    return {
        "gauges_without_observations": no_obs_gauges,
        "days_without_observations": [str(d.date()) for d in no_obs_days],
    }


def _scored(ds: xr.Dataset, variable: str) -> tuple[np.ndarray, np.ndarray]:
    window = ds.sel(time=slice(pd.Timestamp(ds.attrs["scored_from"]), None))
    return window[variable].values, window["observations"].values


def model_names(ds: xr.Dataset) -> dict[str, str]:
    """``{model name: variable}`` of the model and every baseline in ``model_test.zarr``."""
    names = {MODEL: "predictions"}
    names.update(
        {
            str(v).removeprefix("baseline_"): str(v)
            for v in ds.data_vars
            if str(v).startswith("baseline_")
        }
    )
    return names


def score_gauges(
    ds: xr.Dataset, gauges: pd.DataFrame, well_observed_fraction: float
) -> pd.DataFrame:
    """Per-gauge metrics of the model and every baseline (long table, one row per model × gauge).

    Columns: ``model``, ``gage_id``, ``split``, ``well_observed``, ``observed`` (any valid day),
    ``n_valid``, ``n_days`` and the metrics of :data:`ddr_pipeline.metrics.METRICS`.
    Gauges without observations keep NaN scores and ``observed = False``.
    """
    split = gauges.assign(STAID=gauges["STAID"].astype(str)).set_index("STAID")["split"]
    staids = [str(g) for g in ds["gage_id"].values]
    tables = []
    for name, variable in model_names(ds).items():
        predicted, observed = _scored(ds, variable)
        table = metrics.metrics_table(predicted, observed, staids)
        obs_fraction = np.isfinite(observed).sum(axis=1) / observed.shape[1]
        table.insert(0, "well_observed", obs_fraction >= well_observed_fraction)
        table.insert(0, "observed", np.isfinite(observed).any(axis=1))
        table.insert(0, "split", split.reindex(staids).astype("str").to_numpy())
        table.insert(0, "model", name)
        tables.append(table.reset_index())
    return pd.concat(tables, ignore_index=True)


def _subset(table: pd.DataFrame, subset: str) -> pd.DataFrame:
    observed = table[table["observed"]]
    masks = {
        "all": np.ones(len(observed), bool),
        "well_observed": observed["well_observed"].to_numpy(),
        "train": (observed["split"] == "train").to_numpy(),
        "validation": (observed["split"] == "validation").to_numpy(),
    }
    masks["train_well"] = masks["train"] & masks["well_observed"]
    masks["validation_well"] = masks["validation"] & masks["well_observed"]
    return observed[masks[subset]]


def comparison_table(per_gauge: pd.DataFrame) -> pd.DataFrame:
    """Summary statistics (median/mean/q25/q75/count) per model, gauge subset and metric."""
    rows = []
    for model, group in per_gauge.groupby("model", sort=False):
        for subset in SUBSETS:
            gauges = _subset(group, subset)
            summary = metrics.summarize(gauges).reset_index()
            summary.insert(0, "subset", subset)
            summary.insert(0, "model", model)
            summary.insert(2, "n_gauges", len(gauges))
            rows.append(summary)
    return pd.concat(rows, ignore_index=True)


def mlflow_metrics(comparison: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{<model>.<subset>.<metric>_<median|mean>: {value, step}}`` (+ gauge counts) for MLflow."""
    out: dict[str, dict[str, float]] = {}
    headline = comparison[comparison["metric"].isin(["nse", "kge", "kge_prime", "rmse", "pbias"])]
    for row in headline.itertuples(index=False):
        for stat in ("median", "mean"):
            value = float(getattr(row, stat))
            if np.isfinite(value):
                out[f"{row.model}.{row.subset}.{row.metric}_{stat}"] = {"value": value, "step": 0}
    for row in comparison.drop_duplicates(["model", "subset"]).itertuples(index=False):
        out[f"{row.model}.{row.subset}.n_gauges"] = {"value": float(row.n_gauges), "step": 0}
    return out


def tag_mlflow_run(ds: xr.Dataset) -> None:
    """Tag the active MLflow run (if any) with the training run name and the checkpoint."""
    import mlflow

    if mlflow.active_run() is None:
        return
    mlflow.set_tags(
        {
            "training_run_name": ds.attrs["training_run_name"],
            "checkpoint": f"epoch {ds.attrs['checkpoint_epoch']} mb {ds.attrs['checkpoint_mini_batch']}",
            "period": " .. ".join(ds.attrs["period"]),
        }
    )


def _tables_by_model(per_gauge: pd.DataFrame, subset: str) -> dict[str, pd.DataFrame]:
    return {
        str(model): _subset(group, subset).set_index("gage_id")
        for model, group in per_gauge.groupby("model", sort=False)
    }


def comparison_figures(per_gauge: pd.DataFrame, subset: str) -> tuple[Figure, Figure, Figure]:
    """NSE CDF, KGE CDF and metric boxplots of the model vs the baselines on ``subset`` gauges."""
    tables = _tables_by_model(per_gauge, subset)
    return (
        plots.plot_metric_cdf(tables, "nse"),
        plots.plot_metric_cdf(tables, "kge"),
        plots.plot_metric_boxplots(tables),
    )


def hydrograph_figure(ds: xr.Dataset, per_gauge: pd.DataFrame, chosen: list[str]) -> Figure:
    """Hydrographs at the chosen, best, median and worst (NSE) observed gauges."""
    model_table = _tables_by_model(per_gauge, "all")[MODEL]
    picks = plots.select_gauges(model_table, "nse", chosen=[str(c) for c in chosen])
    names = model_names(ds)
    simulations = {name: ds[variable] for name, variable in names.items()}
    return plots.plot_hydrographs(ds["observations"], simulations, picks, model_table)


def gauge_map_figure(per_gauge: pd.DataFrame, gauges: pd.DataFrame) -> Figure:
    """Gauge map coloured by the model's NSE."""
    model_table = per_gauge[per_gauge["model"] == MODEL].set_index("gage_id")
    table = gauges.assign(STAID=gauges["STAID"].astype(str)).set_index("STAID")
    table = table.loc[[g for g in model_table.index if g in table.index]]
    return plots.plot_gauge_map(table, model_table["nse"], label="NSE")


def parameter_figure(
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    reaches: pd.DataFrame,
    params: dict[str, Any],
    model_inputs: xr.Dataset,
) -> Figure:
    """Maps of the learned parameters per reach (static values, daily ones averaged)."""
    start, end = _period(params, model_inputs)
    first, stop = inputs.day_range(start, end)
    source = inference.TrainedParameters(
        ckpt.model, ckpt.config, inputs.attribute_names, inputs.forcing_names
    )
    domain = inference.reach_domain(inputs)
    means = inference.parameter_means(
        inputs, domain, source, first, stop, chunk_days=params["chunk_days"]
    )
    points = _reach_points(reaches, inputs.reach_ids)
    names = {"p_spatial": "p"}
    learned = [p for p in ckpt.config.learned_parameters if names.get(p, p) in means]
    daily = _daily(ckpt)
    fields = {f"mean {p}" if p in daily else p: means[names.get(p, p)] for p in learned}
    if ckpt.config.params.use_leakance and "K_D" in means:
        fields["K_D"] = means["K_D"]
    log_names = [f for f in fields if f.split()[-1] in ("top_width", "side_slope", "d_gw", "K_D")]
    return plots.plot_reach_maps(points[:, 0], points[:, 1], fields, log_scale=log_names)


def _daily(ckpt: LoadedCheckpoint) -> list[str]:
    return list(ckpt.config.cuda_lstm.learnable_parameters) if ckpt.config.cuda_lstm else []


def _reach_points(reaches: pd.DataFrame, reach_ids: np.ndarray) -> np.ndarray:
    """``(N, 2)`` x/y of each reach's representative point (NaN where it has no geometry).

    Reaches are matched by id; ids missing from the table raise ``KeyError`` naming them.
    """
    if "geometry" not in reaches:
        raise KeyError(f"reaches table has no geometry column; columns: {list(reaches.columns)}")
    table = reaches.set_index(reaches["id"].astype(np.int64))
    missing = np.setdiff1d(reach_ids, table.index.to_numpy())
    if missing.size:
        raise KeyError(f"reaches table lacks reach ids {format_values(missing)}")
    points = gpd.GeoSeries(table.loc[reach_ids, "geometry"]).representative_point()
    return np.column_stack([points.x.to_numpy(), points.y.to_numpy()])


def loss_figure(ckpt: LoadedCheckpoint) -> Figure:
    """Training loss per mini-batch from the checkpoint's history."""
    return plots.plot_loss_curve(pd.DataFrame(ckpt.payload["history"]))
