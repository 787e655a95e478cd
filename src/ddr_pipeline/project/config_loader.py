"""The project's Kedro config loader: ``--params`` replace tables instead of merging into them.

Kedro merges ``kedro run --params`` into the parameters key by key. For most blocks that is what
a user means (``--params training.experiment.epochs=2`` keeps the rest of ``experiment``), but a
table such as the learning-rate schedule is one value: ``--params
"training.experiment.learning_rate={1: 0.01}"`` must train with that table, not with ``{1: 0.01,
8: 0.002}`` merged from ``conf/base``. The same holds for an environment (``--env``) that
overlays ``conf/base`` (parameters merge softly, key by key). :class:`ProjectConfigLoader` puts
the value of every path in :data:`REPLACED_TABLES` given by the runtime parameters, else by the
run environment's files, back in place of the merged one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf

_CONFIG_SUFFIXES = (".yml", ".yaml", ".json")

#: Parameter paths whose ``--params`` value replaces the configured value as a whole.
REPLACED_TABLES: tuple[tuple[str, ...], ...] = (("training", "experiment", "learning_rate"),)


def _lookup(tree: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return False, None
        node = node[key]
    return True, node


def replace_tables(
    params: dict[str, Any], runtime_params: Mapping[str, Any], tables: tuple[tuple[str, ...], ...]
) -> dict[str, Any]:
    """``params`` with each of ``tables`` given in ``runtime_params`` set to the runtime value."""
    for path in tables:
        given, value = _lookup(runtime_params, path)
        found, parent = _lookup(params, path[:-1])
        if given and found and isinstance(parent, dict):
            parent[path[-1]] = value
    return params


class ProjectConfigLoader(OmegaConfigLoader):
    """``OmegaConfigLoader`` whose runtime parameters replace the tables of
    :data:`REPLACED_TABLES` instead of merging into them."""

    def __getitem__(self, key: str) -> dict[str, Any]:
        config = super().__getitem__(key)
        if key == "parameters":
            for overlay in (self._environment_parameters(), self.runtime_params or {}):
                config = replace_tables(config, overlay, REPLACED_TABLES)
        return config

    def _environment_parameters(self) -> dict[str, Any]:
        """The run environment's own parameter files merged (unresolved), ``{}`` for base."""
        env = self.env or self.default_run_env
        folder = Path(str(self.conf_source)) / env if env else None
        if env == self.base_env or folder is None or not folder.is_dir():
            return {}
        files = {
            file
            for pattern in self.config_patterns["parameters"]
            for file in folder.glob(pattern)
            if file.is_file() and file.suffix in _CONFIG_SUFFIXES
        }
        if not files:  # e.g. conf/local with only its .gitkeep
            return {}
        merged = OmegaConf.merge(*(OmegaConf.load(file) for file in sorted(files)))
        return OmegaConf.to_container(merged, resolve=False)
