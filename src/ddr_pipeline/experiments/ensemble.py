"""Seed ensembles: K members trained sequentially, scored as members and as their mean.

A member is the configured model trained with seed ``experiment.seed + k`` (run name
``<run_name>-m<k>``). Evaluation routes every member over a period, averages the daily discharge
of the members (the ensemble mean) and scores the mean, every member and the spread of the
members' medians, per gauge subset (``all`` and each ``split`` of the gauge table).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline.config.training import TrainingConfig, load_training_config
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.data.provenance import check_provenance
from ddr_pipeline.evaluation.scoring import score_gauges, well_observed_medians
from ddr_pipeline.inference.gauges import GaugePrediction

logger = logging.getLogger(__name__)

def member_config(config: TrainingConfig, member: int) -> TrainingConfig:
    """The configuration of member ``member``: seed + member, run name suffixed ``-m<member>``."""
    if member < 0:
        raise ValueError(f"ensemble member index must be >= 0, got {member}")
    raw = config.model_dump(mode="json")
    raw["experiment"]["seed"] = config.experiment.seed + member
    raw["run_name"] = f"{config.run_name}-m{member}"
    return load_training_config(raw)


def ensemble_inputs(
    ds: xr.Dataset, gauges: pd.DataFrame, stats: Mapping[str, Any] | None = None
) -> ModelInputs:
    """:class:`ModelInputs` of ``ds`` once ``ds``, ``gauges`` and ``stats`` are shown to come
    from one ``data_processing`` run (:func:`~ddr_pipeline.data.provenance.check_provenance`)."""
    check_provenance(gauges=gauges, model_inputs=ds.attrs, stats=stats)
    return ModelInputs.from_dataset(ds)


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
    predictions: Sequence[GaugePrediction], split: Mapping[str, str]
) -> EnsembleReport:
    """Score every member and the members' mean; ``split`` maps STAID -> gauge split."""
    if not predictions:
        raise ValueError("an ensemble report needs at least one member prediction")
    first = predictions[0]
    for p in predictions[1:]:
        if p.staids != first.staids or not p.dates.equals(first.dates):
            raise ValueError("ensemble members were predicted on different gauges or days")
    labels = [split[s] for s in first.staids]

    def score(simulated: np.ndarray) -> pd.DataFrame:
        return score_gauges(simulated, first.observed, first.staids, labels)

    stack = np.stack([p.simulated for p in predictions])  # (K, G, D)
    rows = []
    for k, p in enumerate(predictions):
        rows.append({"member": k, **well_observed_medians(score(p.simulated))})
    members = pd.DataFrame(rows).set_index("member")
    mean_scores = score(stack.mean(axis=0))
    valid = np.isfinite(first.observed)
    inside = (first.observed >= stack.min(axis=0)) & (first.observed <= stack.max(axis=0))
    coverage = np.where(valid.any(axis=1), (inside & valid).sum(axis=1) / valid.sum(axis=1), np.nan)
    per_gauge = mean_scores.assign(band_coverage=coverage).set_index("gage_id")
    spread = members.agg(["mean", "std", "min", "max"]).T
    return EnsembleReport(
        members=members,
        mean=well_observed_medians(mean_scores),
        spread=spread,
        per_gauge=per_gauge,
    )

