"""``routing`` pipeline: trained weights -> discharge at every reach of a domain.

Inputs: ``<geodataset>.model_inputs`` / ``.normalization_stats`` / ``.model_gauges`` (gauges
of streamflow assimilation, ``routing.assimilation``) and the trained model named by
``params:routing.model``. Outputs: ``routing.discharge``
(``data/07_model_output/<run>/routed_discharge.zarr``) and a summary plot (docs/pipelines.md).
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from ddr_pipeline.pipelines import model_loading
from ddr_pipeline.pipelines.geodataset import active_geodataset
from ddr_pipeline.pipelines.routing import nodes

PREFIX = "routing"


def create_pipeline(geodataset: str | None = None, **kwargs: object) -> Pipeline:
    """Build the routing pipeline for ``geodataset`` (must match ``routing.geodataset``)."""
    geodataset = geodataset or active_geodataset()
    return model_loading.create_pipeline(PREFIX, geodataset) + Pipeline(
        [
            Node(
                nodes.route_domain,
                [
                    "routing.checkpoint",
                    "routing.inputs",
                    "params:routing",
                    "params:routing.run_name",
                    f"{geodataset}.model_gauges",
                ],
                "routing.discharge",
                name="route_domain",
            ),
            Node(
                model_loading.tag_mlflow_run,
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
