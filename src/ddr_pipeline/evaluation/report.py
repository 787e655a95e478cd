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
INITIAL = "initial"
REFERENCE = "reference"
#: Subsets of gauges every model is summarised on.
SUBSETS = ("all", "well_observed", "train", "validation", "train_well", "validation_well")
#: Drainage-area classes gauges are reported by (km², lower edges; the last is open-ended), the
#: bins peers use (DDR's evaluation notebook, ddrs): routing's gains differ by an order of
#: magnitude between small and large basins.
AREA_CLASS_EDGES: tuple[float, ...] = (0.0, 1_000.0, 5_000.0, 10_000.0)
AREA_CLASS_LABELS: tuple[str, ...] = ("<1000 km2", "1000-5000 km2", "5000-10000 km2", ">=10000 km2")
#: Class of a gauge without a (finite, non-negative) drainage area.
AREA_UNKNOWN = "unknown area"


def area_class(drain_sqkm: np.ndarray | pd.Series | list[float]) -> np.ndarray:
    """Drainage-area class label (:data:`AREA_CLASS_LABELS`) of each area in km².

    A class includes its lower edge (1,000 km² is in ``1000-5000 km2``); NaN or negative areas
    get :data:`AREA_UNKNOWN`.
    """
    area = np.asarray(drain_sqkm, dtype=np.float64)
    index = np.searchsorted(np.asarray(AREA_CLASS_EDGES), area, side="right") - 1
    known = np.isfinite(area) & (area >= 0.0)
    labels = np.asarray(AREA_CLASS_LABELS, dtype=object)[np.clip(index, 0, None)]
    return np.where(known, labels, AREA_UNKNOWN).astype(object)


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

    Columns: ``model``, ``drain_sqkm`` and ``area_class`` (:func:`area_class`; NaN /
    :data:`AREA_UNKNOWN` when the gauge table has no ``drain_sqkm``) and those of
    :func:`ddr_pipeline.scoring.score_gauges`. Gauges without observations keep NaN scores and
    ``observed = False``.
    """
    table_by_id = gauges.assign(STAID=gauges["STAID"].astype(str)).set_index("STAID")
    staids = [str(g) for g in ds["gage_id"].values]
    splits = table_by_id["split"].reindex(staids).astype("str").to_numpy()
    area = (
        table_by_id["drain_sqkm"].reindex(staids).to_numpy(dtype=np.float64)
        if "drain_sqkm" in table_by_id
        else np.full(len(staids), np.nan)
    )
    tables = []
    for name, variable in model_names(ds).items():
        predicted, observed = scored_window(ds, variable)
        table = scoring.score_gauges(predicted, observed, staids, splits, well_observed_fraction)
        table.insert(1, "model", name)
        table.insert(2, "drain_sqkm", area)
        table.insert(3, "area_class", area_class(area))
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


def comparison_by_area(per_gauge: pd.DataFrame, subset: str = "all") -> pd.DataFrame:
    """Summary statistics per model and drainage-area class (:data:`AREA_CLASS_LABELS`, then
    :data:`AREA_UNKNOWN`) of the ``subset`` gauges.

    Columns: ``model``, ``area_class``, ``n_gauges``, ``metric``, ``median``, ``mean``, ``q25``,
    ``q75``, ``count``; classes without a gauge are left out. A per-gauge table without an
    ``area_class`` column (written before it existed) puts every gauge in :data:`AREA_UNKNOWN`.
    """
    rows = []
    for model, group in per_gauge.groupby("model", sort=False):
        gauges = gauge_subset(group, subset)
        classes = (
            gauges["area_class"]
            if "area_class" in gauges
            else pd.Series(AREA_UNKNOWN, index=gauges.index)
        )
        for label in (*AREA_CLASS_LABELS, AREA_UNKNOWN):
            members = gauges[classes.to_numpy() == label]
            if members.empty:
                continue
            summary = metrics.summarize(members).reset_index()
            summary.insert(0, "n_gauges", len(members))
            summary.insert(0, "area_class", label)
            summary.insert(0, "model", model)
            rows.append(summary)
    columns = ["model", "area_class", "n_gauges", "metric", "median", "mean", "q25", "q75", "count"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)


def tables_by_model(per_gauge: pd.DataFrame, subset: str) -> dict[str, pd.DataFrame]:
    """``{model: its per-gauge rows in subset, indexed by gage_id}``."""
    return {
        str(model): gauge_subset(group, subset).set_index("gage_id")
        for model, group in per_gauge.groupby("model", sort=False)
    }
