"""Typed parameters of the data_processing, evaluation and routing pipelines (pydantic v2).

Like :class:`ddr_pipeline.config.training.TrainingConfig` for ``training``: every section forbids unknown
keys (with a did-you-mean), and :func:`validate_parameters` raises
:class:`~ddr_pipeline.config.training.ConfigError` with one ``section.key.path: problem`` line per error.
The project hook (:mod:`ddr_pipeline.project.hooks`) validates the sections of the pipelines being run
before any node starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, field_validator

from ddr_pipeline.config.assimilation import AssimilationConfig
from ddr_pipeline.config.model_source import ModelSource
from ddr_pipeline.config.training import (
    DEVICE_PATTERN,
    GEODATASET_PATTERN,
    ConfigError,
    LaxDate,
    PositiveInt,
    StrictModel,
    TrainingConfig,
    as_tuple,
    validate_section,
)
from ddr_pipeline.parameter_registry import LEARNABLE_PARAMETERS

#: Default share of valid days in a scored period that makes a gauge "well observed".
WELL_OBSERVED_FRACTION = 0.9

logger = logging.getLogger(__name__)

Geodataset = Annotated[str, Field(pattern=GEODATASET_PATTERN)]
Device = Annotated[str, Field(pattern=DEVICE_PATTERN)]
DateRange = Annotated[tuple[LaxDate, LaxDate], BeforeValidator(as_tuple)]
#: Gauge subsets the evaluation summarises (:data:`ddr_pipeline.evaluation.report.SUBSETS`).
GaugeSubset = Literal[
    "all", "well_observed", "train", "validation", "train_well", "validation_well"
]


def _ordered(period: DateRange | None) -> DateRange | None:
    if period is not None and period[0] > period[1]:
        raise ValueError(f"start {period[0]} is after end {period[1]}")
    return period


class GaugeSplitConfig(StrictModel):
    """Held-out validation gauges."""

    validation_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="Share of gauges held out (when no STAIDs are listed)."
    )
    seed: int = Field(42, ge=0, description="Seed of the validation draw.")
    validation_staids: list[str] | None = Field(
        None, description="Explicit validation STAIDs (override the fraction)."
    )


class LateralInflowConfig(StrictModel):
    """Treatment of missing lateral inflow."""

    nan_fill: float | None = Field(
        0.0, ge=0.0, description="Value (m3/s) replacing NaN in Qr; null = NaN is an error."
    )
    max_nan_fraction_per_reach: float = Field(
        0.1, ge=0.0, le=1.0, description="Most NaN-filled days of one divide (else an error)."
    )
    max_nan_fraction: float = Field(
        0.01, ge=0.0, le=1.0, description="Most NaN-filled Qr values overall (else an error)."
    )


class DataProcessingConfig(StrictModel):
    """The ``data_processing`` parameters section."""

    geodataset: Geodataset = Field(..., description="Geodataset folder under data/01_raw.")
    periods: dict[str, DateRange] = Field(
        ..., description="Inclusive daily periods {name: [start, end]}; `train` is required."
    )
    gauges: GaugeSplitConfig = Field(
        default_factory=GaugeSplitConfig, description="Held-out validation gauges."
    )
    lateral_inflow: LateralInflowConfig = Field(
        default_factory=LateralInflowConfig, description="Missing lateral inflow."
    )
    attributes: list[str] | None = Field(
        None, description="Static attribute columns (null = every column but `id`)."
    )
    forcings: list[str] = Field(
        default_factory=lambda: ["P", "PET", "Temp"],
        description="Forcing variables ([] = none: no forcings store needed, no LSTM).",
    )

    @field_validator("periods")
    @classmethod
    def _periods(cls, periods: dict[str, DateRange]) -> dict[str, DateRange]:
        if "train" not in periods:
            raise ValueError(f"a 'train' period is required, got {sorted(periods)}")
        for name, period in periods.items():
            try:
                _ordered(period)
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
        return periods


class _TrainedModelRun(StrictModel):
    """Keys shared by the pipelines that run a trained model."""

    geodataset: Geodataset = Field(..., description="Geodataset whose model inputs are used.")
    run_name: str = Field(..., description="Training run whose model is used.")
    model: ModelSource = Field(
        default_factory=ModelSource, description="Which trained model (model store)."
    )
    period: DateRange | None = Field(None, description="[start, end] (null = the default).")
    warmup_days: int = Field(0, ge=0, description="Days routed before the period, not output.")
    chunk_days: PositiveInt = Field(73, description="Routing chunk length (state carried).")
    device: Device = Field("cpu", description="cpu | cuda | cuda:N.")

    _period = field_validator("period")(_ordered)


class UntrainedBaselineConfig(StrictModel):
    """Constant parameters (mid-range unless given)."""

    enabled: bool = Field(True, description="Route the untrained baseline.")
    values: dict[str, float] = Field(
        default_factory=dict, description="Physical values of learned parameters."
    )

    @field_validator("values")
    @classmethod
    def _known(cls, values: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(values) - set(LEARNABLE_PARAMETERS))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; known: {list(LEARNABLE_PARAMETERS)}")
        return values


class ReferenceBaselineConfig(StrictModel):
    """A dataset's own routing product (skipped when the path is absent)."""

    path: str | None = Field(None, description="zarr store of the product (absent = skipped).")
    variable: str = Field("outflow", description="Variable of the product.")


class BaselinesConfig(StrictModel):
    """Baselines scored next to the model."""

    summed_lateral_inflow: bool = Field(True, description="Upstream sum of the lateral inflow.")
    untrained: UntrainedBaselineConfig = Field(
        default_factory=UntrainedBaselineConfig, description="Constant-parameter routing."
    )
    initial: bool = Field(
        True, description="The trained model's networks at their initial weights (step 0)."
    )
    reference: ReferenceBaselineConfig = Field(
        default_factory=ReferenceBaselineConfig, description="A dataset's routing product."
    )


class EvaluationConfig(_TrainedModelRun):
    """The ``evaluation`` parameters section."""

    warmup_days: int = Field(30, ge=0, description="Days routed before the period, not scored.")
    check_training_parameters: bool = Field(
        False, description="Also compare the checkpoint with the current training parameters."
    )
    well_observed_fraction: float = Field(
        WELL_OBSERVED_FRACTION,
        ge=0.0,
        le=1.0,
        description="Valid-day share of well-observed gauges.",
    )
    plot_subset: GaugeSubset = Field("well_observed", description="Gauges in the CDFs/boxplots.")
    hydrograph_gauges: list[str] = Field(
        default_factory=list, description="STAIDs always plotted (plus best/median/worst NSE)."
    )
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig, description="Baselines.")
    model_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Legend names of the model and baselines in the figures (by model key).",
    )


class RoutingConfig(_TrainedModelRun):
    """The ``routing`` parameters section."""

    target_reach_ids: list[int] = Field(
        default_factory=list, description="[] = every reach; else their upstream closure."
    )
    nproc_per_node: PositiveInt = Field(
        1, description="> 1: route independent basins on that many local ranks (same output)."
    )
    summary_reach_ids: list[int] = Field(
        default_factory=list, description="Reaches in the summary plot ([] = largest mean flow)."
    )
    assimilation: AssimilationConfig = Field(
        default_factory=AssimilationConfig,
        description="Streamflow nudging toward gauges (docs/data_assimilation.md); off by default.",
    )


#: Parameters section -> its model.
SECTIONS: dict[str, type[BaseModel]] = {
    "data_processing": DataProcessingConfig,
    "training": TrainingConfig,
    "evaluation": EvaluationConfig,
    "routing": RoutingConfig,
}


def _training_period_days(parameters: Mapping[str, Any]) -> int | None:
    """Days of ``data_processing.periods.train`` (None: not configured or not valid)."""
    block = parameters.get("data_processing")
    if not isinstance(block, Mapping):
        return None
    try:
        config = DataProcessingConfig.model_validate(dict(block))
    except ValueError:
        return None  # its own validation reports it when data_processing runs
    start, end = config.periods["train"]
    return (end - start).days + 1


def check_training_window(parameters: Mapping[str, Any], training: TrainingConfig) -> None:
    """Raise :class:`ConfigError` when ``experiment.warmup`` leaves no scored day in the
    training window (``rho``, or with ``rho: null`` the whole ``data_processing.periods.train``)."""
    days = _training_period_days(parameters)
    if days is None:
        return
    experiment = training.experiment
    window = days if experiment.rho is None else min(experiment.rho, days)
    if experiment.warmup >= window:
        source = "the training period" if window == days else "rho"
        raise ConfigError(
            f"training.experiment.warmup: {experiment.warmup} days leave no day to score in a "
            f"{window}-day window ({source}; data_processing.periods.train has {days} days)"
        )


def warn_oversubscribed(training: TrainingConfig, cores: int | None = None) -> str | None:
    """Log (and return) a warning when ranks x threads exceed this machine's cores."""
    cores = cores or os.cpu_count() or 1
    ranks = training.distributed.nproc_per_node
    threads = training.distributed.threads_per_rank if ranks > 1 else training.experiment.threads
    if threads is None or ranks * threads <= cores:
        return None
    message = (
        f"training runs {ranks} rank(s) x {threads} thread(s) = {ranks * threads} threads on "
        f"{cores} cores: oversubscribed, expect it to be much slower "
        "(training.distributed.threads_per_rank / experiment.threads)"
    )
    logger.warning(message)
    return message


def validate_parameters(parameters: Mapping[str, Any], sections: list[str]) -> dict[str, Any]:
    """Validate ``sections`` of the Kedro parameters; ``ConfigError`` lists every problem.

    The ``geodataset`` of the validated sections must agree; with ``training``, the warm-up
    must fit its window (:func:`check_training_window`) and ranks x threads are compared with
    the cores (a warning).
    """
    configs, problems = {}, []
    for name in sections:
        try:
            configs[name] = validate_section(SECTIONS[name], parameters.get(name), name)
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError("\n".join(problems))
    names = {name: cfg.geodataset for name, cfg in configs.items()}
    if len(set(names.values())) > 1:
        raise ConfigError(
            "the parameter sections name different geodatasets: "
            + ", ".join(f"{k}.geodataset={v!r}" for k, v in names.items())
        )
    if "training" in configs:
        check_training_window(parameters, configs["training"])
        warn_oversubscribed(configs["training"])
    return configs
