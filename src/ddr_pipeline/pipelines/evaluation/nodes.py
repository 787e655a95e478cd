"""Nodes of the ``evaluation`` pipeline: thin wrappers around :mod:`ddr_pipeline.evaluation`.

Flow (after the shared load-model nodes, :mod:`ddr_pipeline.pipelines.model_loading`): route
the test period (after a warm-up) at every gauge in time chunks carrying state -> baselines on
the same gauges and days -> ``model_test.zarr`` -> per-gauge metrics per model and subset ->
comparison table, MLflow metrics, figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from ddr_pipeline import parameter_registry
from ddr_pipeline.config.pipelines import EvaluationConfig
from ddr_pipeline.config.training import validate_section
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.data.geometry import reach_lines, reach_points
from ddr_pipeline.evaluation import plots
from ddr_pipeline.evaluation.fields import parameter_fields
from ddr_pipeline.evaluation.predictions import predict_period
from ddr_pipeline.evaluation.report import MODEL, model_names, tables_by_model
from ddr_pipeline.inference.gauges import PredictionSettings
from ddr_pipeline.inference.periods import evaluation_period
from ddr_pipeline.model_store.checkpoints import LoadedCheckpoint
from ddr_pipeline.project import tracking


def predict_test_period(  # noqa: PLR0917 (Kedro passes node inputs positionally)
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    gauges: pd.DataFrame,
    params: dict[str, Any],
    run_name: str,
    model_inputs: xr.Dataset,
) -> xr.Dataset:
    """The ``model_test.zarr`` dataset: model + baselines at all gauges over the test period."""
    config = validate_section(EvaluationConfig, params, "evaluation")
    period = evaluation_period(config.period, model_inputs)
    settings = PredictionSettings(
        warmup_days=config.warmup_days,
        chunk_days=config.chunk_days,
        device=config.device,
        baselines=config.baselines,
    )
    return predict_period(ckpt, inputs, gauges, period, settings, run_name)


def headline_metrics(comparison: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The headline metrics (:func:`ddr_pipeline.project.tracking.headline_metrics`) for MLflow.

    ``{"headline/<model>.<all|heldout>.<nse|kge>_median": {value, step}}``: a few comparable
    numbers per run; the full table is the ``comparison.csv`` / ``metrics_per_gauge`` artifact.
    """
    return {
        name: {"value": value, "step": 0}
        for name, value in tracking.headline_metrics(comparison).items()
    }


def comparison_figures(
    per_gauge: pd.DataFrame, subset: str, labels: dict[str, str] | None = None
) -> tuple[Figure, Figure, Figure]:
    """NSE CDF, KGE CDF and metric boxplots of the model vs the baselines on ``subset`` gauges."""
    tables = tables_by_model(per_gauge, subset)
    return (
        plots.plot_metric_cdf(tables, "nse", labels=labels),
        plots.plot_metric_cdf(tables, "kge", labels=labels),
        plots.plot_metric_boxplots(tables, labels=labels),
    )


def hydrograph_figure(
    ds: xr.Dataset,
    per_gauge: pd.DataFrame,
    chosen: list[str],
    labels: dict[str, str] | None = None,
) -> Figure:
    """Hydrographs (linear and log) at the chosen, best, median and worst (NSE) gauges."""
    model_table = tables_by_model(per_gauge, "all")[MODEL]
    picks = plots.select_gauges(model_table, "nse", chosen=[str(c) for c in chosen])
    names = model_names(ds)
    simulations = {name: ds[variable] for name, variable in names.items()}
    return plots.plot_hydrographs(ds["observations"], simulations, picks, model_table, labels=labels)


def gauge_map_figure(
    per_gauge: pd.DataFrame, gauges: pd.DataFrame, reaches: pd.DataFrame | None = None
) -> Figure:
    """Gauge map coloured by the model's NSE over the river network."""
    model_table = per_gauge[per_gauge["model"] == MODEL].set_index("gage_id")
    table = gauges.assign(STAID=gauges["STAID"].astype(str)).set_index("STAID")
    table = table.loc[[g for g in model_table.index if g in table.index]]
    lines = None
    if reaches is not None:
        lines = reach_lines(reaches, reaches["id"].to_numpy(np.int64))
    return plots.plot_gauge_map(table, model_table["nse"], label="NSE (-)", lines=lines)


def parameter_figure(
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    reaches: pd.DataFrame,
    params: dict[str, Any],
    model_inputs: xr.Dataset,
) -> Figure:
    """Maps of the learned parameters per reach (static values, daily ones averaged), with units."""
    config = validate_section(EvaluationConfig, params, "evaluation")
    period = evaluation_period(config.period, model_inputs)
    fields = parameter_fields(ckpt, inputs, period, config.chunk_days)
    points = reach_points(reaches, inputs.reach_ids)
    lines = reach_lines(reaches, inputs.reach_ids)
    log_names = [f for f in fields if parameter_registry.log_scale(f)]
    return plots.plot_reach_maps(
        points[:, 0], points[:, 1], fields, log_scale=log_names, lines=lines
    )


def loss_figure(ckpt: LoadedCheckpoint) -> Figure:
    """Training loss per mini-batch, epoch means and marks, held-out validation NSE."""
    history = pd.DataFrame(ckpt.payload["history"])
    return plots.plot_loss_curve(history, loss_label=plots.loss_label(ckpt.config.loss.name))
