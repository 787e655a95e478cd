"""Seed ensembles: K members trained sequentially, scored as members and as their mean.

A member is the configured model trained with seed ``experiment.seed + k`` (run name
``<run_name>-m<k>``). Evaluation routes every member over a period, averages the daily discharge
of the members (the ensemble mean) and scores the mean, every member and the spread of the
members' medians, per gauge subset (``all`` and each ``split`` of the gauge table).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ddr_pipeline.config.training import TrainingConfig, load_training_config
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.evaluation import metrics
from ddr_pipeline.models import RoutingModel
from ddr_pipeline.simulation import FeatureIndex, RoutingSettings
from ddr_pipeline.simulation.batches import build_batch
from ddr_pipeline.training.validation import predict

logger = logging.getLogger(__name__)

#: Gauges with at least this fraction of valid days in the scored period are "well observed".
WELL_OBSERVED_FRACTION = 0.9


def member_config(config: TrainingConfig, member: int) -> TrainingConfig:
    """The configuration of member ``member``: seed + member, run name suffixed ``-m<member>``."""
    if member < 0:
        raise ValueError(f"ensemble member index must be >= 0, got {member}")
    raw = config.model_dump(mode="json")
    raw["experiment"]["seed"] = config.experiment.seed + member
    raw["run_name"] = f"{config.run_name}-m{member}"
    return load_training_config(raw)


def train_members(
    config: TrainingConfig, members: int, train_one: Callable[[TrainingConfig], RoutingModel]
) -> list[RoutingModel]:
    """Train ``members`` models one after the other with :func:`member_config` seeds."""
    if members < 1:
        raise ValueError(f"an ensemble needs at least one member, got {members}")
    models = []
    for k in range(members):
        cfg = member_config(config, k)
        logger.info("ensemble member %d/%d (seed %d)", k + 1, members, cfg.experiment.seed)
        models.append(train_one(cfg))
    return models


@dataclass(frozen=True)
class PeriodPrediction:
    """Daily discharge of the gauges over the scored days: ``(gauges, days)`` arrays."""

    staids: tuple[str, ...]
    dates: pd.DatetimeIndex
    simulated: np.ndarray
    observed: np.ndarray


def predict_gauges(
    model: RoutingModel,
    config: TrainingConfig,
    inputs: ModelInputs,
    gauges: GaugeSet,
    scored: tuple[int, int],
    *,
    warmup_days: int,
) -> PeriodPrediction:
    """Route all ``gauges`` from ``warmup_days`` before the day positions ``scored`` (hot start,
    trained model in eval mode) and return the scored days."""
    first, stop = scored
    start = max(first - warmup_days, 0)
    features = FeatureIndex.from_names(config, inputs.attribute_names, inputs.forcing_names)
    batch = build_batch(inputs, gauges, list(range(len(gauges))), start, stop)
    daily = predict(model, batch, features, RoutingSettings.from_config(config))[first - start :].T
    return PeriodPrediction(
        staids=gauges.staids,
        dates=inputs.dates[first:stop],
        simulated=daily.astype(np.float64),
        observed=batch.observations.numpy()[first - start :].T.astype(np.float64),
    )


def gauge_scores(simulated: np.ndarray, observed: np.ndarray) -> pd.DataFrame:
    """Per-gauge NSE, KGE and valid-day fraction of ``(gauges, days)`` arrays."""
    return pd.DataFrame(
        {
            "nse": metrics.nse(simulated, observed),
            "kge": metrics.kge(simulated, observed),
            "valid_fraction": np.isfinite(observed).mean(axis=1),
        }
    )


def subset_medians(
    scores: pd.DataFrame, split: Sequence[str], well_observed: float = WELL_OBSERVED_FRACTION
) -> dict[str, float]:
    """``{"<subset>_nse"|"_kge"|"_gauges": ...}`` medians at the well-observed gauges, subsets
    ``all`` and each split."""
    table = scores.assign(split=list(split))
    well = table[table["valid_fraction"] >= well_observed]
    out: dict[str, float] = {}
    for label, sub in (("all", well), *((s, well[well["split"] == s]) for s in sorted(set(split)))):
        out[f"{label}_gauges"] = float(len(sub))
        for metric in ("nse", "kge"):
            values = sub[metric].to_numpy(dtype=np.float64)
            out[f"{label}_{metric}"] = (
                float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")
            )
    return out


@dataclass(frozen=True)
class EnsembleReport:
    """Scores of an ensemble over one period.

    ``members``: one row of subset medians per member; ``mean``: subset medians of the ensemble
    mean; ``spread``: std, min and max over members of every member median; ``per_gauge``: the
    ensemble mean's per-gauge scores plus the fraction of valid days whose observation lies in
    the members' min–max band (``band_coverage``).
    """

    members: pd.DataFrame
    mean: dict[str, float]
    spread: pd.DataFrame
    per_gauge: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "ensemble_mean": self.mean,
            "members": self.members.to_dict(orient="records"),
            "spread": self.spread.to_dict(orient="index"),
        }


def ensemble_report(
    predictions: Sequence[PeriodPrediction], split: Mapping[str, str]
) -> EnsembleReport:
    """Score every member and the members' mean; ``split`` maps STAID -> gauge split."""
    if not predictions:
        raise ValueError("an ensemble report needs at least one member prediction")
    first = predictions[0]
    for p in predictions[1:]:
        if p.staids != first.staids or not p.dates.equals(first.dates):
            raise ValueError("ensemble members were predicted on different gauges or days")
    labels = [split[s] for s in first.staids]
    stack = np.stack([p.simulated for p in predictions])  # (K, G, D)
    rows = []
    for k, p in enumerate(predictions):
        rows.append(
            {"member": k, **subset_medians(gauge_scores(p.simulated, first.observed), labels)}
        )
    members = pd.DataFrame(rows).set_index("member")
    mean_scores = gauge_scores(stack.mean(axis=0), first.observed)
    valid = np.isfinite(first.observed)
    inside = (first.observed >= stack.min(axis=0)) & (first.observed <= stack.max(axis=0))
    coverage = np.where(valid.any(axis=1), (inside & valid).sum(axis=1) / valid.sum(axis=1), np.nan)
    per_gauge = mean_scores.assign(
        STAID=list(first.staids), split=labels, band_coverage=coverage
    ).set_index("STAID")
    spread = members.agg(["mean", "std", "min", "max"]).T
    return EnsembleReport(
        members=members,
        mean=subset_medians(mean_scores, labels),
        spread=spread,
        per_gauge=per_gauge,
    )
