"""``training`` pipeline: validate the config, prepare data, train, score the test period.

Reads the data_processing outputs of one geodataset (``drb.model_inputs``, ``drb.model_gauges``,
``drb.normalization_stats``) and ``params:training``; writes ``training.batch_plan`` (every
mini-batch: gauges, window, sub-network size), ``training.trained_model`` (the final
checkpoint), ``training.history``, ``training.summary``, ``training.test_scores`` and MLflow
metrics (catalog: ``conf/base/catalog_training.yml``). Checkpoints during training go to
``<monitoring.models_dir>/<run_name>/saved_models/``.
"""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from ddr_pipeline.pipelines.geodataset import active_geodataset
from ddr_pipeline.pipelines.training import nodes


def create_pipeline(geodataset: str | None = None, **kwargs: object) -> Pipeline:
    """Build the training pipeline for ``geodataset``."""
    geodataset = geodataset or active_geodataset()
    return Pipeline(
        [
            Node(
                update_wrapper(
                    partial(nodes.resolve_training_config, geodataset=geodataset),
                    nodes.resolve_training_config,
                ),
                "params:training",
                "training.config",
                name="resolve_training_config",
            ),
            Node(
                nodes.prepare_data,
                [f"{geodataset}.model_inputs", f"{geodataset}.model_gauges", "training.config"],
                "training.data",
                name="prepare_training_data",
            ),
            Node(
                nodes.plan_batches,
                ["training.config", "training.data"],
                "training.batch_plan",
                name="plan_batches",
            ),
            Node(
                nodes.train_model,
                [
                    "training.config",
                    "training.data",
                    f"{geodataset}.normalization_stats",
                    "training.batch_plan",
                ],
                ["training.trained_model", "training.history", "training.summary"],
                name="train_model",
            ),
            Node(
                nodes.loss_figure,
                ["training.history", "training.config"],
                "training.plot_loss_curve",
                name="training_loss_figure",
            ),
            Node(
                nodes.score_test_period,
                ["training.trained_model", "training.config", "training.data"],
                ["training.test_scores", "training.test_metrics"],
                name="score_test_period",
            ),
        ],
        tags=["training"],
    )
