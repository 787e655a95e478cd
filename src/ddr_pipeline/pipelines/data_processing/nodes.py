"""Nodes of the ``data_processing`` pipeline: thin wrappers around ``ddr_pipeline.data``.

Every node is pure: it takes validated inputs and parameters and returns new objects; Kedro's
catalog does the I/O. Errors come from the library (schema validators, ``RiverNetwork``) and name
the offending ids, columns, variables or dates.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline import __version__
from ddr_pipeline.config.pipelines import DataProcessingConfig
from ddr_pipeline.config.training import validate_section
from ddr_pipeline.data import schema
from ddr_pipeline.data.model_inputs import build_model_inputs
from ddr_pipeline.data.normalization import attribute_statistics, forcing_statistics
from ddr_pipeline.data.provenance import (
    SPLIT_FINGERPRINT,
    STATS_FINGERPRINT,
    split_fingerprint,
    stats_fingerprint,
)
from ddr_pipeline.data.splits import (
    TRAIN,
    VALIDATION,
    Period,
    assign_gauge_splits,
    covering_dates,
    observed_days,
    parse_periods,
    training_reach_mask,
)
from ddr_pipeline.network import RiverNetwork

logger = logging.getLogger(__name__)


def _config(params: dict[str, Any]) -> DataProcessingConfig:
    """The typed ``data_processing`` section (validated before the run by the project hook)."""
    return validate_section(DataProcessingConfig, params, "data_processing")

GAUGE_COLUMNS: tuple[str, ...] = (
    "STAID",
    "reach_ids",
    "split",
    "drain_sqkm",
    "lat",
    "lon",
    "upstream_count",
)


def _reach_ids(reaches: pd.DataFrame) -> np.ndarray:
    return reaches[schema.ID_COL].to_numpy(dtype=np.int64)


def validate_reaches(reaches: pd.DataFrame) -> pd.DataFrame:
    """Validate the reaches table (dangling ``to_id`` become logged outlets).

    The geometry is dropped: the model inputs only need the channel columns.
    """
    validated = schema.validate_reaches(pd.DataFrame(reaches))
    return pd.DataFrame(validated.drop(columns="geometry", errors="ignore"))


def build_network(reaches: pd.DataFrame) -> RiverNetwork:
    """Build the river network; raises on cycles and self-loops naming the reach ids."""
    network = RiverNetwork.from_ids(_reach_ids(reaches), reaches[schema.TO_ID_COL])
    logger.info(
        "network: %d reaches, %d outlets, %d headwaters, %d topological levels",
        network.n_reaches,
        int(network.is_outlet.sum()),
        int(network.is_headwater.sum()),
        int(network.levels.max()) + 1 if network.n_reaches else 0,
    )
    return network


def validate_gauges(gauges: pd.DataFrame, reaches: pd.DataFrame) -> pd.DataFrame:
    """Validate the gauges table; every gauge must sit on known reaches."""
    return schema.validate_gauges(gauges, _reach_ids(reaches))


def validate_lakes(lakes: pd.DataFrame, reaches: pd.DataFrame) -> pd.DataFrame:
    """Validate the optional lakes table (empty: the geodataset has none) against the reaches."""
    if lakes.empty and not len(lakes.columns):
        return lakes
    validated = schema.validate_lakes(lakes, _reach_ids(reaches))
    logger.info("lakes: %d level-pool lakes", len(validated))
    return validated


def attribute_names(attributes: pd.DataFrame, params: dict[str, Any]) -> list[str]:
    """The configured attribute columns (``attributes: null`` = every column but ``id``)."""
    names = _config(params).attributes
    if names is None:
        return [str(c) for c in attributes.columns if c != schema.ID_COL]
    return [str(n) for n in names]


def validate_attributes(
    attributes: pd.DataFrame, reaches: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """Validate the configured attribute columns, rows ordered like the reaches."""
    names = attribute_names(attributes, params)
    return schema.validate_attributes(attributes, _reach_ids(reaches), names)


def validate_lateral_inflow(
    lateral_inflow: xr.Dataset, reaches: pd.DataFrame, params: dict[str, Any]
) -> tuple[xr.Dataset, int]:
    """Validate ``Qr``: negative/infinite values fail; NaN is filled with ``lateral_inflow.nan_fill``
    up to the ``max_nan_fraction_per_reach`` / ``max_nan_fraction`` ceilings."""
    rule = _config(params).lateral_inflow
    return schema.validate_lateral_inflow(
        lateral_inflow,
        _reach_ids(reaches),
        rule.nan_fill,
        max_nan_fraction_per_reach=rule.max_nan_fraction_per_reach,
        max_nan_fraction=rule.max_nan_fraction,
    )


def validate_forcings(
    forcings: xr.Dataset, reaches: pd.DataFrame, params: dict[str, Any]
) -> xr.Dataset:
    """Validate the configured forcing variables for every reach.

    ``forcings: []`` (no LSTM) needs no store: the result then holds only the reach ids. An absent
    store with forcings configured fails naming the store and the variables.
    """
    names = list(params["forcings"] or [])
    ids = _reach_ids(reaches)
    if not names:
        return xr.Dataset(coords={schema.DIVIDE_DIM: ids})
    if "absent" in forcings.attrs:
        raise FileNotFoundError(
            f"{forcings.attrs['absent']}: no forcings store, but data_processing.forcings lists "
            f"{', '.join(names)}; convert forcings, or set data_processing.forcings: [] "
            "(only for models without an LSTM: training.cuda_lstm: null)"
        )
    return schema.validate_forcings(forcings, ids, names)


def validate_observations(observations: xr.Dataset, gauges: pd.DataFrame) -> xr.Dataset:
    """Validate observed discharge for every gauge of the gauge table."""
    return schema.validate_observations(
        observations, gauges[schema.STAID_COL].tolist(), gauges["drain_sqkm"].to_numpy()
    )


def check_periods(
    lateral_inflow: xr.Dataset,
    forcings: xr.Dataset,
    observations: xr.Dataset,
    params: dict[str, Any],
) -> dict[str, Period]:
    """Parse the periods and require lateral inflow and forcings (when configured) to cover
    every day of them."""
    periods = parse_periods(params["periods"])
    stores = [(schema.LATERAL_INFLOW_STORE, lateral_inflow)]
    if forcings.data_vars:
        stores.append((schema.FORCINGS_STORE, forcings))
    for period in periods.values():
        for name, ds in stores:
            schema.check_period(ds, period.start, period.end, f"{name} ({period.name} period)")
        _warn_sparse_observations(observations, period)
    return periods


def _warn_sparse_observations(observations: xr.Dataset, period: Period) -> None:
    q = observations[schema.STREAMFLOW_VAR].sel(time=slice(period.start, period.end))
    empty = q[schema.GAGE_DIM].to_numpy()[~q.notnull().any(dim="time").to_numpy()]
    if empty.size:
        logger.warning(
            "%d gauge(s) have no observation in the %s period: %s",
            empty.size,
            period.name,
            empty[:10].tolist(),
        )


def gauge_upstream_closures(gauges: pd.DataFrame, network: RiverNetwork) -> list[np.ndarray]:
    """For every gauge, the reach indices upstream of (and including) its reaches."""
    return [
        network.upstream_closure(network.index_of(np.asarray(ids, dtype=np.int64)))
        for ids in gauges[schema.REACH_IDS_COL]
    ]


def split_gauges(
    gauges: pd.DataFrame,
    closures: list[np.ndarray],
    observations: xr.Dataset,
    periods: dict[str, Period],
    params: dict[str, Any],
) -> pd.DataFrame:
    """Add ``split``, ``upstream_count`` and ``n_obs_<period>`` (observed days) to the gauges.

    An optional ``flow_scale`` column (validated by :func:`schema.validate_gauges`) is kept, as
    float64, right after the standard columns; it defaults to no scaling where absent.
    """
    cfg = _config(params).gauges
    labels = assign_gauge_splits(
        gauges[schema.STAID_COL].tolist(),
        validation_fraction=cfg.validation_fraction,
        seed=cfg.seed,
        validation_gauges=cfg.validation_staids,
    )
    out = gauges.copy()
    out["split"] = pd.Series(labels, index=out.index, dtype="string").astype(str)
    out["upstream_count"] = np.array([c.size for c in closures], dtype=np.int64)
    counts = observed_days(observations[schema.STREAMFLOW_VAR], periods)
    for name, count in counts.items():
        out[f"n_obs_{name}"] = count
    scale = [schema.FLOW_SCALE_COL] if schema.FLOW_SCALE_COL in out.columns else []
    front = [*GAUGE_COLUMNS, *scale, *(f"n_obs_{name}" for name in counts)]
    extra = [c for c in out.columns if c not in front]
    return out[[*front, *extra]].reset_index(drop=True)


def compute_normalization_stats(  # noqa: PLR0913
    *,
    attributes: pd.DataFrame,
    forcings: xr.Dataset,
    gauges: pd.DataFrame,
    closures: list[np.ndarray],
    network: RiverNetwork,
    periods: dict[str, Period],
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Attribute/forcing statistics from the training reaches and the training period only.

    Training reaches are those upstream of a training gauge with at least one observation in the
    training period. Returned twice: for the versioned JSON and for the MLflow artifact.
    """
    is_train = ((gauges["split"] == TRAIN) & (gauges[f"n_obs_{TRAIN}"] > 0)).to_numpy()
    mask = training_reach_mask(network.n_reaches, closures, is_train)
    train = periods[TRAIN]
    reach_ids = network.ids[mask]
    stats = {
        "attributes": attribute_statistics(attributes, attribute_names(attributes, params), mask),
        "forcings": forcing_statistics(
            forcings, list(params["forcings"] or []), reach_ids, train.start, train.end
        ),
        "computed_on": {
            "reaches": "upstream of training gauges observed in the training period",
            "n_reaches": int(mask.sum()),
            "n_train_gauges": int(is_train.sum()),
            "period": train.as_strings(),
            SPLIT_FINGERPRINT: split_fingerprint(gauges),
        },
    }
    logger.info(
        "normalisation statistics from %d training reaches over %s .. %s",
        int(mask.sum()),
        *train.as_strings(),
    )
    return stats, stats


def assemble_model_inputs(  # noqa: PLR0913
    *,
    reaches: pd.DataFrame,
    attributes: pd.DataFrame,
    lateral_inflow: xr.Dataset,
    forcings: xr.Dataset,
    observations: xr.Dataset,
    stats: dict[str, Any],
    periods: dict[str, Period],
    params: dict[str, Any],
    lakes: pd.DataFrame | None = None,
) -> xr.Dataset:
    """Build the model-ready dataset over the days covering every configured period (with the
    validated lakes, if any)."""
    attrs = {
        "title": "ddr_pipeline model inputs",
        "ddr_pipeline_version": __version__,
        **{f"{name}_period": p.as_strings() for name, p in periods.items()},
        SPLIT_FINGERPRINT: stats["computed_on"][SPLIT_FINGERPRINT],
        STATS_FINGERPRINT: stats_fingerprint(stats),
    }
    return build_model_inputs(
        reaches=reaches,
        attributes=attributes,
        lateral_inflow=lateral_inflow,
        forcings=forcings,
        observations=observations,
        stats=stats,
        dates=covering_dates(periods),
        attribute_names=attribute_names(attributes, params),
        forcing_names=list(params["forcings"] or []),
        attrs=attrs,
        lakes=lakes,
    )


def summarize(
    network: RiverNetwork, gauges: pd.DataFrame, stats: dict[str, Any], n_filled: int
) -> dict[str, dict[str, float | int]]:
    """Run summary as MLflow metrics (``{name: {"value": v, "step": 0}}``)."""
    values = {
        "n_reaches": network.n_reaches,
        "n_outlets": int(network.is_outlet.sum()),
        "n_gauges_train": int((gauges["split"] == TRAIN).sum()),
        "n_gauges_validation": int((gauges["split"] == VALIDATION).sum()),
        "n_training_reaches": int(stats["computed_on"]["n_reaches"]),
        "n_lateral_inflow_filled": int(n_filled),
        "max_gauge_upstream_count": int(gauges["upstream_count"].max()) if len(gauges) else 0,
    }
    return {k: {"value": float(v), "step": 0} for k, v in values.items()}
