"""Model selection that never reads the test period (docs/results.md, *Selection protocol*).

1. :func:`training_period_inputs` slices the model-ready dataset to the training period
   **before** anything is loaded and drops every other period from its attributes: the
   :class:`ModelInputs` of the selection hold no test-period value, and any request for the test
   period raises (``ModelInputs.period("test")`` → ``KeyError``).
2. Each candidate (a set of config overrides) is trained, per seed, on the training gauges over
   the first part of the training period (``fit_end``) and scored on two validation sets inside
   the training period: *time* = every gauge over the days after ``fit_end`` (the routing starts
   ``warmup_days`` earlier, unscored), *space* = the held-out gauges (``split == validation``,
   never in a training batch) over the fit days after the warm-up. Medians at the well-observed
   gauges; the selection score is the mean of the time and space median NSE, averaged over seeds.
3. The best candidate is then trained once on the whole training period and reported on the
   test period (``scripts/select_config.py --phase final``, a separate process).
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import xarray as xr

from ddr_pipeline.config.training import TrainingConfig, load_training_config
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.data.provenance import check_provenance
from ddr_pipeline.evaluation.scoring import score_gauges, well_observed_medians
from ddr_pipeline.inference.gauges import route_gauges
from ddr_pipeline.models import RoutingModel
from ddr_pipeline.training.setup import TRAIN_SPLIT, VALIDATION_SPLIT, TrainingData, build_trainer

logger = logging.getLogger(__name__)

TRAIN_PERIOD_ATTR = "train_period"


class TestPeriodLeak(RuntimeError):
    """The selection was handed data from after the training period."""


def training_period_inputs(
    ds: xr.Dataset,
    gauges: pd.DataFrame | None = None,
    stats: Mapping[str, Any] | None = None,
) -> ModelInputs:
    """:class:`ModelInputs` of the training period only (sliced before loading; only the
    ``train`` period attribute kept). Raises :class:`TestPeriodLeak` if any date is later, and
    :class:`~ddr_pipeline.data.provenance.MismatchedOutputsError` when ``ds``, ``gauges`` and
    ``stats`` come from different ``data_processing`` runs."""
    check_provenance(gauges=gauges, model_inputs=ds.attrs, stats=stats)
    if TRAIN_PERIOD_ATTR not in ds.attrs:
        raise KeyError(f"the model inputs define no {TRAIN_PERIOD_ATTR!r} attribute")
    start, end = (pd.Timestamp(d) for d in ds.attrs[TRAIN_PERIOD_ATTR])
    sliced = ds.sel(time=slice(start, end))
    sliced.attrs = {k: v for k, v in ds.attrs.items() if not k.endswith("_period")}
    sliced.attrs[TRAIN_PERIOD_ATTR] = ds.attrs[TRAIN_PERIOD_ATTR]
    inputs = ModelInputs.from_dataset(sliced)
    if inputs.dates[-1] > end or set(inputs.periods) != {"train"}:
        raise TestPeriodLeak(
            f"selection inputs reach {inputs.dates[-1].date()} (training period ends "
            f"{end.date()}), periods {sorted(inputs.periods)}"
        )
    logger.info(
        "selection inputs in memory: %s..%s (%d days), periods %s",
        inputs.dates[0].date(),
        inputs.dates[-1].date(),
        len(inputs.dates),
        inputs.periods,
    )
    return inputs


def with_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the ``training`` parameters dict with ``{"a.b.c": value}`` overrides applied.

    Missing sections are created (unknown keys are then rejected by the config validation);
    ``KeyError`` names an override that descends into a non-section value."""
    out = copy.deepcopy(dict(params))
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise KeyError(f"override {dotted!r}: {key!r} is not a section of the config")
        node[leaf] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Split:
    """Where the training period is cut: candidates fit up to ``fit_end`` (inclusive)."""

    fit_end: str
    warmup_days: int = 30


def train_on(
    config: TrainingConfig,
    inputs: ModelInputs,
    gauges: pd.DataFrame,
    period: tuple[int, int],
    normalization_stats: Mapping[str, Any],
) -> RoutingModel:
    """Train ``config`` on the training gauges over day positions ``period`` (checkpoints go to
    a temporary folder that is removed; no MLflow, no progress bar)."""
    raw = config.model_dump(mode="json")
    data = TrainingData(
        inputs=inputs,
        gauges=gauges,
        train_gauges=GaugeSet.from_table(gauges, inputs, TRAIN_SPLIT),
        period=period,
        validation=None,
    )
    with tempfile.TemporaryDirectory(prefix="ddr-selection-") as tmp:
        raw["monitoring"].update(models_dir=tmp, progress_bar=False, log_checkpoints=False)
        result = build_trainer(load_training_config(raw), data, normalization_stats).fit()
    return result.model


def validation_scores(
    model: RoutingModel,
    config: TrainingConfig,
    inputs: ModelInputs,
    gauges: pd.DataFrame,
    split: Split,
) -> dict[str, float]:
    """Medians of the *time* (``time_*``) and *space* (``space_*``) validation sets."""
    fit_stop = inputs.day_range(inputs.dates[0], split.fit_end)[1]
    labels = gauges["split"].astype(str).tolist()
    everyone = GaugeSet.from_table(gauges, inputs, None)
    later = route_gauges(
        model,
        config,
        inputs,
        everyone,
        (fit_stop, len(inputs.dates)),
        warmup_days=split.warmup_days,
    )
    time = well_observed_medians(
        score_gauges(later.simulated, later.observed, later.staids, labels)
    )
    held = gauges[gauges["split"].astype(str) == VALIDATION_SPLIT]
    fit = route_gauges(
        model,
        config,
        inputs,
        GaugeSet.from_table(held, inputs, None),
        (split.warmup_days, fit_stop),
        warmup_days=split.warmup_days,
    )
    space = well_observed_medians(
        score_gauges(fit.simulated, fit.observed, fit.staids, [VALIDATION_SPLIT] * len(held))
    )
    scores = {f"time_{k}": v for k, v in time.items()}
    scores.update({f"space_{k}": v for k, v in space.items() if k.startswith("all_")})
    scores["score"] = 0.5 * (scores["time_all_nse_median"] + scores["space_all_nse_median"])
    return scores


def evaluate_candidate(  # noqa: PLR0913, PLR0917 (one argument per protocol input)
    params: Mapping[str, Any],
    overrides: Mapping[str, Any],
    seed: int,
    inputs: ModelInputs,
    gauges: pd.DataFrame,
    normalization_stats: Mapping[str, Any],
    split: Split,
) -> dict[str, float]:
    """Train one candidate/seed on the fit days and return its validation scores."""
    if set(inputs.periods) != {"train"} or inputs.dates[-1] > pd.Timestamp(
        inputs.periods["train"][1]
    ):
        raise TestPeriodLeak("evaluate_candidate needs training_period_inputs(...)")
    config = load_training_config(with_overrides(params, {**overrides, "experiment.seed": seed}))
    fit_stop = inputs.day_range(inputs.dates[0], split.fit_end)[1]
    model = train_on(config, inputs, gauges, (0, fit_stop), normalization_stats)
    return validation_scores(model, config, inputs, gauges, split)


def choose(results: pd.DataFrame, candidates: Sequence[str]) -> tuple[str, pd.DataFrame]:
    """The candidate with the highest mean ``score`` over its seeds, and the per-candidate
    summary (mean and std over seeds of every score column)."""
    if results.empty:
        raise ValueError("no selection results to choose from")
    numeric = results.drop(columns=["seed"]).groupby("candidate")
    summary = numeric.mean().add_suffix("_mean").join(numeric["score"].std().rename("score_std"))
    summary = summary.reindex([c for c in candidates if c in summary.index])
    return str(summary["score_mean"].idxmax()), summary
