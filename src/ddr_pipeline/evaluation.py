"""Evaluation and domain routing of a trained model: periods, predictions, scores, plot inputs.

Used by the ``evaluation`` and ``routing`` pipelines (which only wrap these functions); built on
:mod:`ddr_pipeline.simulation`, :mod:`ddr_pipeline.baselines` and :mod:`ddr_pipeline.metrics`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr

from ddr_pipeline import __version__, baselines, metrics, plots, scoring, simulation
from ddr_pipeline.checkpoints import LoadedCheckpoint
from ddr_pipeline.data.batching import GaugeSet, ModelInputs
from ddr_pipeline.data.schema import STREAMFLOW_VAR, UNITS, format_values
from ddr_pipeline.distributed.routing import RoutingJob, route_basins_parallel

logger = logging.getLogger(__name__)

MODEL = "model"
SUMMED = "summed_lateral_inflow"
UNTRAINED = "untrained"
REFERENCE = "reference"
#: Subsets of gauges every model is summarised on.
SUBSETS = ("all", "well_observed", "train", "validation", "train_well", "validation_well")


def resolve_period(
    period: Sequence[Any] | None, default: Sequence[Any] | None, *, missing: str
) -> tuple[str, str]:
    """``(start, end)`` ISO dates of ``period``, else of ``default``; ``ValueError(missing)``."""
    chosen = period or default
    if chosen is None or len(chosen) != 2:
        raise ValueError(missing)
    return str(pd.Timestamp(chosen[0]).date()), str(pd.Timestamp(chosen[1]).date())


def evaluation_period(period: Sequence[Any] | None, model_inputs: xr.Dataset) -> tuple[str, str]:
    """The evaluation period: ``period`` or the inputs' ``test_period`` attribute."""
    return resolve_period(
        period,
        model_inputs.attrs.get("test_period"),
        missing="evaluation.period is not set and the model inputs carry no test_period attribute",
    )


def routing_period(period: Sequence[Any] | None, dates: pd.DatetimeIndex) -> tuple[str, str]:
    """The routing period: ``period`` or every day of ``dates``."""
    return resolve_period(
        period, [dates[0], dates[-1]], missing=f"routing period must be [start, end], got {period}"
    )


@dataclass(frozen=True)
class RoutedDays:
    """Day positions of a run: routing starts at ``route_from``, the period spans ``[start, stop)``."""

    route_from: int
    start: int
    stop: int
    warmup_days: int

    @property
    def days(self) -> slice:
        """All routed days (spin-up included)."""
        return slice(self.route_from, self.stop)

    @property
    def keep(self) -> slice:
        """Rows of a routed ``(days, …)`` array that belong to the period."""
        return slice(self.start - self.route_from, None)

    @property
    def shortfall(self) -> int:
        """Warm-up days missing before the period (the inputs start too late)."""
        return self.warmup_days - (self.start - self.route_from)


def spinup_start(dates: pd.DatetimeIndex, start: str, warmup_days: int) -> tuple[int, int]:
    """Day positions ``(route_from, period_start)``: routing begins ``warmup_days`` earlier.

    When the inputs do not reach back far enough, routing starts on their first day and a
    warning names the shortfall (the caller excludes those days from scoring).
    """
    period_start = int(dates.searchsorted(pd.Timestamp(start)))
    route_from = max(period_start - int(warmup_days), 0)
    if period_start - route_from < warmup_days:
        logger.warning(
            "only %d of %d warm-up days before %s are in the inputs",
            period_start - route_from,
            warmup_days,
            start,
        )
    return route_from, period_start


def routed_days(inputs: ModelInputs, period: tuple[str, str], warmup_days: int) -> RoutedDays:
    """Day positions of ``period`` routed after up to ``warmup_days`` of spin-up."""
    route_from, start = spinup_start(inputs.dates, period[0], warmup_days)
    _, stop = inputs.day_range(*period)
    return RoutedDays(route_from, start, stop, int(warmup_days))


def trained_source(ckpt: LoadedCheckpoint, inputs: ModelInputs) -> simulation.TrainedParameters:
    """Parameter source of the checkpoint's trained networks (eval mode) on ``inputs``."""
    features = simulation.FeatureIndex.from_names(
        ckpt.config, inputs.attribute_names, inputs.forcing_names
    )
    return simulation.TrainedParameters(ckpt.model.eval(), features)


def route_trained(
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    problem: simulation.RoutingProblem,
    days: RoutedDays,
    settings: PredictionSettings,
) -> simulation.RolloutResult:
    """Route ``problem`` with the checkpoint's trained networks from the spin-up start to the end."""
    return run_rollout(ckpt, inputs, problem, trained_source(ckpt, inputs), days.days, settings)


def run_rollout(  # noqa: PLR0917 (the rollout's inputs)
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    problem: simulation.RoutingProblem,
    source: simulation.ParameterSource,
    days: slice,
    settings: PredictionSettings,
) -> simulation.RolloutResult:
    """:func:`ddr_pipeline.simulation.rollout` of ``days`` with the checkpoint's routing physics."""
    return simulation.rollout(
        inputs,
        problem,
        source,
        simulation.RoutingSettings.from_config(ckpt.config),
        days.start,
        days.stop,
        chunk_days=settings.chunk_days,
        device=settings.device,
    )


def known_gauges(inputs: ModelInputs, gauges: pd.DataFrame) -> GaugeSet:
    """Gauges of ``gauges`` with an observation series in ``inputs`` (others logged, dropped)."""
    known = gauges[gauges["STAID"].astype(str).isin(inputs.gage_ids)]
    dropped = sorted(set(gauges["STAID"].astype(str)) - set(known["STAID"].astype(str)))
    if dropped:
        logger.warning("gauges without an observation series are not evaluated: %s", dropped)
    return GaugeSet.from_table(known.reset_index(drop=True), inputs, split=None)


def gauge_array(
    values: np.ndarray, staids: Sequence[str], dates: pd.DatetimeIndex, units: str
) -> xr.DataArray:
    """``(gage_id, time)`` float32 array from ``(time, gauges)`` values."""
    return xr.DataArray(
        np.asarray(values, dtype=np.float32).T,
        dims=("gage_id", "time"),
        coords={"gage_id": np.asarray(staids, dtype=str), "time": dates},
        attrs={"units": units},
    )


@dataclass(frozen=True)
class PredictionSettings:
    """Settings of :func:`predict_period` (the ``evaluation`` parameters)."""

    warmup_days: int
    chunk_days: int
    device: str = "cpu"
    baselines: Mapping[str, Any] = field(default_factory=dict)
    nproc_per_node: int = 1  # routing: ranks that route independent basins in parallel

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PredictionSettings:
        """Settings from the ``evaluation`` parameters (``KeyError`` names a missing key)."""
        return cls(
            warmup_days=params["warmup_days"],
            chunk_days=params["chunk_days"],
            device=params["device"],
            baselines=params["baselines"],
        )

    def __post_init__(self) -> None:
        if self.chunk_days < 1:
            raise ValueError(f"chunk_days must be >= 1, got {self.chunk_days}")


def baseline_predictions(
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    gauge_set: GaugeSet,
    problem: simulation.RoutingProblem,
    settings: PredictionSettings,
    *,
    days: slice,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, (days, gauges) daily values)`` of every enabled baseline."""
    cfg = settings.baselines
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
        source = simulation.ConstantParameters(
            ckpt.config, untrained.get("values"), inputs.attribute_names
        )
        logger.info("untrained baseline parameters: %s", source.values)
        routed = run_rollout(ckpt, inputs, problem, source, days, settings)
        yield UNTRAINED, routed.daily
    reference = cfg.get(REFERENCE) or {}
    product = baselines.load_reference(reference.get("path"), reference.get("variable", "outflow"))
    if product is not None:
        reach_ids = [inputs.reach_ids[idx] for idx in gauge_set.reach_index]
        yield REFERENCE, baselines.reference_at_gauges(product, reach_ids, inputs.dates[days])


def predict_period(  # noqa: PLR0917 (mirrors the node's inputs)
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    gauges: pd.DataFrame,
    period: tuple[str, str],
    settings: PredictionSettings,
    run_name: str,
) -> xr.Dataset:
    """Route ``period`` (after the warm-up) at all gauges: the ``model_test`` dataset.

    Variables ``predictions``, ``observations`` and one ``baseline_<name>`` per baseline, dims
    ``(gage_id, time)``, m³/s; attrs: period, scored period, checkpoint, warm-up, gauges and days
    without observations.
    """
    days = routed_days(inputs, period, settings.warmup_days)
    gauge_set = known_gauges(inputs, gauges)
    problem = simulation.gauge_problem(inputs, gauge_set.reach_index, gauge_set.flow_scale)
    routed = route_trained(ckpt, inputs, problem, days, settings)
    dates = inputs.dates[days.start : days.stop]
    units = UNITS[STREAMFLOW_VAR]
    observed = inputs.observations[days.start : days.stop][:, gauge_set.obs_column]
    data = {
        "predictions": gauge_array(routed.daily[days.keep], gauge_set.staids, dates, units),
        "observations": gauge_array(observed, gauge_set.staids, dates, units),
    }
    for name, values in baseline_predictions(
        ckpt, inputs, gauge_set, problem, settings, days=days.days
    ):
        data[f"baseline_{name}"] = gauge_array(values[days.keep], gauge_set.staids, dates, units)
    scored_from = dates[min(max(days.shortfall, 0), len(dates) - 1)]
    ds = xr.Dataset(data)
    ds.attrs.update(
        {
            "units": units,
            "period": list(period),
            "scored_from": str(scored_from.date()),
            "warmup_days": days.warmup_days,
            "routing_started": str(inputs.dates[days.route_from].date()),
            "checkpoint_epoch": int(ckpt.epoch),
            "checkpoint_mini_batch": int(ckpt.mini_batch),
            "training_run_name": run_name,
            "chunk_days": int(settings.chunk_days),
            "ddr_pipeline_version": __version__,
            "description": "daily mean discharge: end-of-step hourly states averaged per day",
        }
    )
    ds.attrs.update(observation_report(ds, scored_from))
    return ds


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


def daily_parameters(ckpt: LoadedCheckpoint) -> list[str]:
    """Learned parameters that vary per day (predicted by the LSTM)."""
    return list(ckpt.config.cuda_lstm.learnable_parameters) if ckpt.config.cuda_lstm else []


def parameter_fields(
    ckpt: LoadedCheckpoint, inputs: ModelInputs, period: tuple[str, str], chunk_days: int
) -> dict[str, np.ndarray]:
    """Per-reach learned parameters over ``period`` (daily ones as ``"mean <name>"``)."""
    first, stop = inputs.day_range(*period)
    problem = simulation.reach_problem(inputs)
    source = trained_source(ckpt, inputs)
    means = simulation.parameter_means(inputs, problem, source, first, stop, chunk_days=chunk_days)
    names = {"p_spatial": "p"}
    learned = [p for p in ckpt.config.learned_parameters if names.get(p, p) in means]
    daily = daily_parameters(ckpt)
    fields = {f"mean {p}" if p in daily else p: means[names.get(p, p)] for p in learned}
    if ckpt.config.params.use_leakance and "K_D" in means:
        fields["K_D"] = means["K_D"]
    return fields


def reach_points(reaches: pd.DataFrame, reach_ids: np.ndarray) -> np.ndarray:
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


def reach_lines(reaches: pd.DataFrame, reach_ids: np.ndarray) -> plots.ReachLines | None:
    """Line parts of the reaches ``reach_ids`` for maps; ``None`` unless every geometry is a line.

    ``owner`` of the result indexes ``reach_ids`` (multi-part reaches give several parts).
    """
    if "geometry" not in reaches:
        return None
    table = reaches.set_index(reaches["id"].astype(np.int64))
    geometry = gpd.GeoSeries(table.reindex(reach_ids)["geometry"]).reset_index(drop=True)
    if not geometry.geom_type.isin(["LineString", "MultiLineString"]).all():
        return None
    parts = geometry.explode(index_parts=False)
    coords, part = shapely.get_coordinates(parts.to_numpy(), return_index=True)
    if coords.size == 0:
        return None
    starts = np.flatnonzero(np.r_[True, part[1:] != part[:-1]])
    owner = parts.index.to_numpy()[part[starts]]
    return plots.ReachLines(np.split(coords, starts[1:]), owner.astype(np.int64))


def route_reaches(  # noqa: PLR0917 (mirrors the node's inputs)
    ckpt: LoadedCheckpoint,
    inputs: ModelInputs,
    period: tuple[str, str],
    settings: PredictionSettings,
    target_reach_ids: Sequence[int] | None,
    run_name: str,
) -> xr.Dataset:
    """Daily mean ``discharge(reach_id, time)`` (m³/s) of a domain over ``period``.

    The domain is every reach, or the upstream closure of ``target_reach_ids``. Routing starts
    ``settings.warmup_days`` before the period when the inputs allow (spin-up days are dropped).
    With ``settings.nproc_per_node > 1`` its independent basins are routed on that many ranks
    (:mod:`ddr_pipeline.distributed.routing`); the result equals the single-process one up to
    float32 rounding.
    """
    days = routed_days(inputs, period, settings.warmup_days)
    problem = simulation.reach_problem(inputs, target_reach_ids or None)
    tic = time.perf_counter()
    if settings.nproc_per_node > 1:
        job = RoutingJob(
            ckpt, inputs, problem, days.route_from, days.stop, settings.chunk_days, settings.device
        )
        routed_daily = route_basins_parallel(job, settings.nproc_per_node)
    else:
        routed_daily = route_trained(ckpt, inputs, problem, days, settings).daily
    seconds = time.perf_counter() - tic
    daily = routed_daily[days.keep]
    logger.info(
        "routed %d reaches over %d days (%s .. %s) in %.1f s; Q min/mean/max %.3g/%.3g/%.3g m3/s",
        problem.network.n_reaches,
        daily.shape[0],
        *period,
        seconds,
        float(np.min(daily)),
        float(np.mean(daily)),
        float(np.max(daily)),
    )
    discharge = xr.DataArray(
        daily.T,
        dims=("reach_id", "time"),
        coords={
            "reach_id": inputs.reach_ids[problem.reach_index],
            "time": inputs.dates[days.start : days.stop],
        },
        attrs={"units": "m3 s-1", "long_name": "daily mean discharge at the reach outlet"},
    )
    return xr.Dataset(
        {"discharge": discharge},
        attrs={
            "period": list(period),
            "routing_started": str(inputs.dates[days.route_from].date()),
            "warmup_days": days.warmup_days,
            "chunk_days": int(settings.chunk_days),
            "ranks": int(settings.nproc_per_node),
            "training_run_name": run_name,
            "checkpoint_epoch": int(ckpt.epoch),
            "checkpoint_mini_batch": int(ckpt.mini_batch),
            "target_reach_ids": [int(r) for r in target_reach_ids or []],
            "ddr_pipeline_version": __version__,
        },
    )
