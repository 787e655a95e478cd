"""Scores of an evaluation dataset: per gauge and model, gauge subsets, summary tables."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline.evaluation import metrics, scoring

logger = logging.getLogger(__name__)

MODEL = "model"
SUMMED = "summed_lateral_inflow"
UNTRAINED = "untrained"
REFERENCE = "reference"
#: Subsets of gauges every model is summarised on.
SUBSETS = ("all", "well_observed", "train", "validation", "train_well", "validation_well")


def observation_report(ds: xr.Dataset, scored_from: pd.Timestamp) -> dict[str, Any]:
    """Gauges and days of the scored period without any observation (logged).

    Raises ``ValueError`` when no gauge has any observation in the scored period.
    """
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


def scored_window(ds: xr.Dataset, variable: str) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted, observed)`` ``(gauges, days)`` values of ``variable`` from ``scored_from``."""
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

    Columns: ``model`` and those of :func:`ddr_pipeline.scoring.score_gauges`. Gauges without
    observations keep NaN scores and ``observed = False``.
    """
    split = gauges.assign(STAID=gauges["STAID"].astype(str)).set_index("STAID")["split"]
    staids = [str(g) for g in ds["gage_id"].values]
    splits = split.reindex(staids).astype("str").to_numpy()
    tables = []
    for name, variable in model_names(ds).items():
        predicted, observed = scored_window(ds, variable)
        table = scoring.score_gauges(predicted, observed, staids, splits, well_observed_fraction)
        table.insert(1, "model", name)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def gauge_subset(table: pd.DataFrame, subset: str) -> pd.DataFrame:
    """Observed rows of a per-gauge table in ``subset`` (one of :data:`SUBSETS`)."""
    if subset not in SUBSETS:
        raise KeyError(f"unknown gauge subset {subset!r}; expected one of {SUBSETS}")
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
            gauges = gauge_subset(group, subset)
            summary = metrics.summarize(gauges).reset_index()
            summary.insert(0, "subset", subset)
            summary.insert(0, "model", model)
            summary.insert(2, "n_gauges", len(gauges))
            rows.append(summary)
    return pd.concat(rows, ignore_index=True)


def tables_by_model(per_gauge: pd.DataFrame, subset: str) -> dict[str, pd.DataFrame]:
    """``{model: its per-gauge rows in subset, indexed by gage_id}``."""
    return {
        str(model): gauge_subset(group, subset).set_index("gage_id")
        for model, group in per_gauge.groupby("model", sort=False)
    }
