"""The pipeline packages of the project (folders under ``ddr_pipeline/pipelines``) and their run order."""

from __future__ import annotations

from importlib import resources

#: The order of the pipelines in a full run (``kedro run``); others follow alphabetically.
RUN_ORDER = ("data_processing", "training", "evaluation", "routing")


def pipeline_folders() -> list[str]:
    """Names of the pipeline packages under ``ddr_pipeline/pipelines``, in :data:`RUN_ORDER`."""
    root = resources.files("ddr_pipeline.pipelines")
    names = [
        entry.name
        for entry in root.iterdir()
        if entry.is_dir()
        and not entry.name.startswith(("_", "."))
        and entry.joinpath("pipeline.py").is_file()
    ]
    order = {name: position for position, name in enumerate(RUN_ORDER)}
    return sorted(names, key=lambda name: (order.get(name, len(order)), name))
