"""``evaluation`` pipeline: trained model + baselines on the test period at every gauge.

Inputs: the model-ready data of one geodataset (``<geodataset>.model_inputs``,
``.model_gauges``, ``.normalization_stats``, ``.reaches``) and a trained model named by
``params:evaluation.model`` (checkpoint path, MLflow model URI or the final model of the
training run ``params:evaluation.run_name``). Outputs: ``evaluation.model_test``
(``data/07_model_output/<run>/model_test.zarr``), per-gauge metrics, the comparison table,
MLflow metrics and figures (see docs/pipelines.md).
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from ddr_pipeline.evaluation.report import comparison_by_area, comparison_table, score_gauges
from ddr_pipeline.pipelines import model_loading
from ddr_pipeline.pipelines.evaluation import nodes
from ddr_pipeline.pipelines.geodataset import active_geodataset

PREFIX = "evaluation"
PARAMS = "params:evaluation"


def create_pipeline(geodataset: str | None = None, **kwargs: object) -> Pipeline:
    """Build the evaluation pipeline for ``geodataset`` (must match ``evaluation.geodataset``)."""
    geodataset = geodataset or active_geodataset()

    def _data(name: str) -> str:
        return f"{geodataset}.{name}"

    return model_loading.create_pipeline(
        PREFIX, geodataset, check_training=True, with_gauges=True
    ) + Pipeline(
        [
            Node(
                nodes.predict_test_period,
                [
                    "evaluation.checkpoint",
                    "evaluation.inputs",
                    _data("model_gauges"),
                    PARAMS,
                    "params:evaluation.run_name",
                    _data("model_inputs"),
                ],
                "evaluation.model_test",
                name="predict_test_period",
            ),
            Node(
                model_loading.tag_mlflow_run, "evaluation.model_test", None, name="tag_mlflow_run"
            ),
            Node(
                score_gauges,
                [
                    "evaluation.model_test",
                    _data("model_gauges"),
                    "params:evaluation.well_observed_fraction",
                ],
                "evaluation.metrics_per_gauge",
                name="score_gauges",
            ),
            Node(
                comparison_table,
                "evaluation.metrics_per_gauge",
                "evaluation.comparison",
                name="comparison_table",
            ),
            Node(
                comparison_by_area,
                "evaluation.metrics_per_gauge",
                "evaluation.comparison_by_area",
                name="comparison_by_area",
            ),
            Node(
                nodes.headline_metrics,
                "evaluation.comparison",
                "evaluation.headline_metrics",
                name="headline_metrics",
            ),
            Node(
                nodes.comparison_figures,
                [
                    "evaluation.metrics_per_gauge",
                    "params:evaluation.plot_subset",
                    "params:evaluation.model_labels",
                ],
                ["evaluation.plot_nse_cdf", "evaluation.plot_kge_cdf", "evaluation.plot_boxplots"],
                name="comparison_figures",
            ),
            Node(
                nodes.hydrograph_figure,
                [
                    "evaluation.model_test",
                    "evaluation.metrics_per_gauge",
                    "params:evaluation.hydrograph_gauges",
                    "params:evaluation.model_labels",
                ],
                "evaluation.plot_hydrographs",
                name="hydrograph_figure",
            ),
            Node(
                nodes.gauge_map_figure,
                ["evaluation.metrics_per_gauge", _data("model_gauges"), _data("reaches")],
                "evaluation.plot_gauge_map",
                name="gauge_map_figure",
            ),
            Node(
                nodes.parameter_figure,
                [
                    "evaluation.checkpoint",
                    "evaluation.inputs",
                    _data("reaches"),
                    PARAMS,
                    _data("model_inputs"),
                ],
                "evaluation.plot_parameter_maps",
                name="parameter_figure",
            ),
            Node(
                nodes.loss_figure,
                "evaluation.checkpoint",
                "evaluation.plot_loss_curve",
                name="loss_figure",
            ),
        ],
        tags=["evaluation"],
    )
