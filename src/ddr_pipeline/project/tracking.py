"""MLflow conventions of the project: run names, headline metrics, evaluation -> training links.

* Runs are named ``<pipeline>:<run name>`` (:func:`mlflow_run_name`), e.g.
  ``training:ddr-drb-training``, ``evaluation:ddr-drb-training``.
* A training run is tagged with the fingerprint of its final model weights
  (:func:`ddr_pipeline.model_store.checkpoints.model_fingerprint`); a run that loads a model
  (evaluation, routing) finds the training run with that fingerprint and records it: tag ``ddr.training_run_id``, ``mlflow.parentRunId``
  (the MLflow UI nests it under the training run) and a link in its description.
* Headline metrics (:func:`headline_metrics`): test-period median NSE / KGE of the trained model
  and of each baseline on all and on held-out gauges, named ``headline/<model>.<gauges>.<metric>``
  and logged on the evaluation run and on its training run (docs/getting_started.md lists them).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Tag: fingerprint of a training run's final model weights.
FINGERPRINT_TAG = "ddr.model_fingerprint"
#: Tag of a run that used a model (evaluation, routing): the fingerprint of that model.
MODEL_USED_TAG = "ddr.model_used"
#: Tag: the MLflow run id of the training run whose model a run used.
TRAINING_RUN_TAG = "ddr.training_run_id"
#: MLflow's own tags: parent run (nesting in the UI), run name and description.
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
NOTE_TAG = "mlflow.note.content"
#: Tag: why a run failed (short message, also in the description).
FAILURE_TAG = "ddr.failure_reason"

#: Prefix of the headline metrics (one section in the MLflow UI's chart view).
HEADLINE_PREFIX = "headline/"
#: Gauge sets of the headline metrics -> evaluation subsets (ddr_pipeline.evaluation.report.SUBSETS).
HEADLINE_GAUGES: dict[str, str] = {"all": "all", "heldout": "validation"}
#: Metrics of the headline (their test-period median over the gauges).
HEADLINE_METRICS: tuple[str, ...] = ("nse", "kge")
#: The metric to compare runs on (held-out gauges, trained model).
PRIMARY_METRIC = f"{HEADLINE_PREFIX}model.heldout.nse_median"


def mlflow_run_name(pipelines: list[str] | None, run_name: str) -> str:
    """``<pipeline>:<run name>``; several pipelines join with ``+``, the default is ``default``."""
    names = [("default" if name == "__default__" else name) for name in (pipelines or [])]
    return f"{'+'.join(names) or 'default'}:{run_name}"


def headline_metrics(comparison: pd.DataFrame) -> dict[str, float]:
    """Headline metrics from the evaluation comparison table (finite values only).

    ``comparison`` has columns ``model``, ``subset``, ``metric``, ``median`` and ``n_gauges``
    (:func:`ddr_pipeline.evaluation.report.comparison_table`). Returns
    ``{"headline/<model>.<all|heldout>.<nse|kge>_median": value}`` plus
    ``headline/n_gauges.<all|heldout>`` (gauges scored, the model's count).
    """
    out: dict[str, float] = {}
    table = comparison[comparison["metric"].isin(HEADLINE_METRICS)]
    for gauges, subset in HEADLINE_GAUGES.items():
        rows = table[table["subset"] == subset]
        for row in rows.itertuples(index=False):
            value = float(row.median)
            if np.isfinite(value):
                out[f"{HEADLINE_PREFIX}{row.model}.{gauges}.{row.metric}_median"] = value
        model_rows = rows[rows["model"] == "model"]
        if len(model_rows):
            out[f"{HEADLINE_PREFIX}n_gauges.{gauges}"] = float(model_rows["n_gauges"].iloc[0])
    return out


def find_training_run(client: Any, experiment_ids: list[str], fingerprint: str) -> Any | None:
    """The latest run of ``experiment_ids`` tagged with ``fingerprint`` (``None`` if none)."""
    runs = client.search_runs(
        experiment_ids,
        filter_string=f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def link_to_training_run(client: Any, run: Any, training_run: Any, tracking_uri: str) -> None:
    """Tag ``run`` with its training run (id, parent) and link it in the description."""
    if training_run.info.run_id == run.info.run_id:  # one run trained and evaluated the model
        client.set_tag(run.info.run_id, TRAINING_RUN_TAG, run.info.run_id)
        return
    link = f"#/experiments/{training_run.info.experiment_id}/runs/{training_run.info.run_id}"
    note = (
        f"Model trained by run [{training_run.info.run_name}]({link}) "
        f"(`{training_run.info.run_id}`)."
    )
    existing = run.data.tags.get(NOTE_TAG, "")
    for key, value in {
        TRAINING_RUN_TAG: training_run.info.run_id,
        PARENT_TAG: training_run.info.run_id,
        NOTE_TAG: f"{existing}\n\n{note}".strip() if note not in existing else existing,
    }.items():
        client.set_tag(run.info.run_id, key, value)
    logger.info("MLflow: linked to training run %s (%s)", training_run.info.run_name, tracking_uri)


def failure_note(error: BaseException, limit: int = 500) -> str:
    """One-paragraph reason of a failed run: exception type and (shortened) message."""
    message = " ".join(str(error).split()) or repr(error)
    if len(message) > limit:
        message = message[: limit - 3] + "..."
    return f"{type(error).__name__}: {message}"
