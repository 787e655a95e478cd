"""``data_processing`` pipeline: raw schema folder -> validated, split, normalised model inputs.

The pipeline is a template instantiated once per geodataset under a Kedro namespace, so its
datasets are named ``<geodataset>.<name>`` (``drb.reaches`` ... ``drb.model_inputs``) and resolved
by the dataset factories in ``conf/base/catalog*.yml``. Parameters stay shared
(``params:data_processing``). ``DDR_GEODATASET`` selects the geodataset (default ``drb``), e.g.
``DDR_GEODATASET=merit kedro run --env merit --pipelines data_processing``; a
``data_processing.geodataset`` parameter naming another geodataset stops the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Node, Pipeline

from ddr_pipeline.pipelines.data_processing import nodes
from ddr_pipeline.pipelines.geodataset import active_geodataset, check_geodataset

PARAMS = "params:data_processing"


def _check_params_geodataset(params: dict[str, Any], geodataset: str) -> None:
    """Fail when ``data_processing.geodataset`` is set and names another geodataset."""
    if "geodataset" in params:
        check_geodataset(params["geodataset"], geodataset)


def _validation_nodes() -> list[Node]:
    return [
        Node(nodes.validate_reaches, "reaches", "validated_reaches", name="validate_reaches"),
        Node(nodes.build_network, "validated_reaches", "network", name="build_network"),
        Node(
            nodes.validate_gauges,
            ["gauges", "validated_reaches"],
            "validated_gauges",
            name="validate_gauges",
        ),
        Node(nodes.validate_lakes, ["lakes", "validated_reaches"], "validated_lakes",
             name="validate_lakes"),  # fmt: skip
        Node(
            nodes.validate_attributes,
            ["attributes", "validated_reaches", PARAMS],
            "validated_attributes",
            name="validate_attributes",
        ),
        Node(
            nodes.validate_lateral_inflow,
            ["lateral_inflow", "validated_reaches", PARAMS],
            ["validated_lateral_inflow", "n_lateral_inflow_filled"],
            name="validate_lateral_inflow",
        ),
        Node(
            nodes.validate_forcings,
            ["forcings", "validated_reaches", PARAMS],
            "validated_forcings",
            name="validate_forcings",
        ),
        Node(
            nodes.validate_observations,
            ["observations", "validated_gauges"],
            "validated_observations",
            name="validate_observations",
        ),
        Node(
            nodes.check_periods,
            ["validated_lateral_inflow", "validated_forcings", "validated_observations", PARAMS],
            "periods",
            name="check_periods",
        ),
    ]


def _modelling_nodes() -> list[Node]:
    return [
        Node(
            nodes.gauge_upstream_closures,
            ["validated_gauges", "network"],
            "gauge_closures",
            name="gauge_upstream_closures",
        ),
        Node(
            nodes.split_gauges,
            ["validated_gauges", "gauge_closures", "validated_observations", "periods", PARAMS],
            "model_gauges",
            name="split_gauges",
        ),
        Node(
            nodes.compute_normalization_stats,
            {
                "attributes": "validated_attributes",
                "forcings": "validated_forcings",
                "gauges": "model_gauges",
                "closures": "gauge_closures",
                "network": "network",
                "periods": "periods",
                "params": PARAMS,
            },
            ["normalization_stats", "normalization_stats_artifact"],
            name="compute_normalization_stats",
        ),
        Node(
            nodes.assemble_model_inputs,
            {
                "reaches": "validated_reaches",
                "attributes": "validated_attributes",
                "lateral_inflow": "validated_lateral_inflow",
                "forcings": "validated_forcings",
                "observations": "validated_observations",
                "stats": "normalization_stats",
                "periods": "periods",
                "params": PARAMS,
                "lakes": "validated_lakes",
            },
            "model_inputs",
            name="assemble_model_inputs",
        ),
        Node(
            nodes.summarize,
            ["network", "model_gauges", "normalization_stats", "n_lateral_inflow_filled"],
            "data_processing_metrics",
            name="summarize",
        ),
    ]


def template_pipeline() -> Pipeline:
    """The un-namespaced pipeline (dataset names without the geodataset prefix)."""
    return Pipeline([*_validation_nodes(), *_modelling_nodes()])


def _geodataset_pipeline(name: str) -> Pipeline:
    """The template plus a check that the parameters (Kedro environment) match ``name``."""
    check_params = partial(_check_params_geodataset, geodataset=name)
    check = Node(
        update_wrapper(check_params, _check_params_geodataset),
        PARAMS,
        None,
        name="check_geodataset",
    )
    return Pipeline([check, template_pipeline()], namespace=name, parameters={PARAMS: PARAMS})


def create_pipeline(geodatasets: Iterable[str] | None = None, **kwargs: object) -> Pipeline:
    """One namespaced copy of the template per geodataset (default: ``DDR_GEODATASET``)."""
    geodatasets = geodatasets or (active_geodataset(),)
    return sum((_geodataset_pipeline(name) for name in geodatasets), start=Pipeline([]))
