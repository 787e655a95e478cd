"""``routing`` pipeline: trained weights -> discharge at every reach of a domain.

Inputs: ``<geodataset>.model_inputs`` / ``.normalization_stats`` and the trained model named by
``params:routing.model``. Outputs: ``routing.discharge``
(``data/07_model_output/<run>/routed_discharge.zarr``) and a summary plot (docs/pipelines.md).
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from ddr_pipeline.pipelines.evaluation import nodes as evaluation_nodes
from ddr_pipeline.pipelines.geodataset import active_geodataset, geodataset_check
from ddr_pipeline.pipelines.routing import nodes

#: The geodataset routed (its data_processing outputs are the inputs): ``DDR_GEODATASET``.
GEODATASET = active_geodataset()


def create_pipeline(geodataset: str = GEODATASET, **kwargs: object) -> Pipeline:
    """Build the routing pipeline for ``geodataset`` (must match ``routing.geodataset``)."""
    return Pipeline(
        [
            Node(
                geodataset_check(geodataset),
                "params:routing.geodataset",
                "routing.geodataset",
                name="check_routing_geodataset",
            ),
            Node(
                evaluation_nodes.load_trained_model,
                ["params:routing.model", "params:routing.run_name"],
                "routing.checkpoint",
                name="load_routing_model",
            ),
            Node(
                evaluation_nodes.check_model_against_data,
                [
                    "routing.checkpoint",
                    f"{geodataset}.model_inputs",
                    f"{geodataset}.normalization_stats",
                    "routing.geodataset",
                ],
                "routing.inputs",
                name="check_routing_model_against_data",
            ),
            Node(
                nodes.route_domain,
                [
                    "routing.checkpoint",
                    "routing.inputs",
                    "params:routing",
                    "params:routing.run_name",
                ],
                "routing.discharge",
                name="route_domain",
            ),
            Node(
                evaluation_nodes.tag_mlflow_run,
                "routing.discharge",
                None,
                name="tag_routing_mlflow_run",
            ),
            Node(
                nodes.summary_figure,
                ["routing.discharge", "params:routing.summary_reach_ids"],
                "routing.plot_summary",
                name="routing_summary_figure",
            ),
        ],
        tags=["routing"],
    )
