"""Project pipelines: one registered pipeline per folder under ``ddr_pipeline/pipelines``.

``__default__`` (a plain ``kedro run``) runs them all as one graph,
``data_processing -> training -> evaluation -> routing``: evaluation and routing use the model
the same run trained (the ``training.trained_model`` dataset) instead of a checkpoint found on
disk, so Kedro orders them after training and a fresh clone runs end to end.
"""

from __future__ import annotations

import re

from kedro.framework.project import find_pipelines
from kedro.pipeline import Node, Pipeline

from ddr_pipeline.project.pipeline_folders import pipeline_folders
from ddr_pipeline.project.preflight import did_you_mean

#: The training pipeline's final model (catalog dataset) and the pipelines that load a model.
TRAINED_MODEL = "training.trained_model"
MODEL_USERS = ("evaluation", "routing")

_MISSING_MODULE = re.compile(r"'ddr_pipeline\.pipelines\.([^']+)' module")


class UnknownPipelineError(KeyError):
    """A requested pipeline name that is not registered (the message lists the pipelines)."""

    def __str__(self) -> str:
        return str(self.args[0])


def use_trained_model(trained_model: object) -> object:
    """The model the training pipeline of the same run wrote (``training.trained_model``)."""
    return trained_model


def from_training(pipeline: Pipeline, name: str) -> Pipeline:
    """``pipeline`` with its load-model node (input ``params:<name>.model``) reading the model
    the training pipeline writes instead of the checkpoint its parameters name."""
    return Pipeline(
        [
            Node(use_trained_model, TRAINED_MODEL, node.outputs[0], name=node.name, tags=node.tags)
            if f"params:{name}.model" in node.inputs
            else node
            for node in pipeline.nodes
        ]
    )


def default_pipeline(pipelines: dict[str, Pipeline]) -> Pipeline:
    """All pipelines as one graph; evaluation and routing use the model trained in it."""
    training = pipelines.get("training")
    linked = training is not None and TRAINED_MODEL in training.all_outputs()
    parts = [
        from_training(pipeline, name) if linked and name in MODEL_USERS else pipeline
        for name, pipeline in pipelines.items()
    ]
    return sum(parts, start=Pipeline([]))


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline name (the folder name) to ``Pipeline``; ``__default__`` runs them
        all.

    Raises:
        UnknownPipelineError: a requested pipeline (``kedro run --pipelines``) does not exist.
    """
    try:
        pipelines = find_pipelines(raise_errors=True)
    except ImportError as error:
        match = _MISSING_MODULE.search(str(error))
        if error.__cause__ is not None or match is None:  # a real import failure
            raise
        raise UnknownPipelineError(
            f"there is no pipeline {match[1]!r}{did_you_mean(match[1], pipeline_folders())}; "
            "the pipelines are: "
            f"{', '.join(pipeline_folders())} (and __default__, all of them: `kedro run`)"
        ) from None
    pipelines["__default__"] = default_pipeline(pipelines)
    return pipelines
