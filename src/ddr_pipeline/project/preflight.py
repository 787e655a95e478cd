"""Checks before a run starts, each ending in one actionable message (:class:`UserError`).

* :func:`check_param_overrides`: every ``--params`` key names an existing parameter (or a
  runtime-only one such as ``run_name``), with a did-you-mean for typos.
* :func:`missing_inputs_message`: inputs of the requested pipelines that are not on disk, with the
  pipeline (or converter) that makes them.

Kedro-free: :mod:`ddr_pipeline.project.hooks` feeds them the run's pipeline, catalog and parameters.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from ddr_pipeline.config.training import flatten_dict

#: Converter command (``[project.scripts]``) and its docs page per geodataset.
CONVERTERS: dict[str, tuple[str, str]] = {
    "drb": ("ddr-convert-drb", "docs/datasets/drb.md"),
    "merit": ("ddr-convert-merit --config conf/merit/sources.yml", "docs/datasets/merit.md"),
    "lynker_hydrofabric": (
        "ddr-convert-hydrofabric --config conf/lynker_hydrofabric/sources.yml",
        "docs/datasets/lynker_hydrofabric.md",
    ),
}


class UserError(Exception):
    """A mistake in how the project is run; the message says what to do (no traceback needed)."""


def did_you_mean(name: str, candidates: Iterable[str], n: int = 2) -> str:
    """``" (did you mean 'x' or 'y'?)"`` for the close matches of ``name``, else ``""``.

    Dotted names are compared with their siblings first (same parent, close last part), then
    with every candidate.
    """
    candidates = list(candidates)
    parent, _, leaf = name.rpartition(".")
    siblings = {c.rpartition(".")[2]: c for c in candidates if c.rpartition(".")[0] == parent}
    matches = [siblings[m] for m in difflib.get_close_matches(leaf, siblings, n=n, cutoff=0.6)]
    matches = matches or difflib.get_close_matches(name, candidates, n=n, cutoff=0.75)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"


def _open_mapping(params: Mapping[str, Any], path: str) -> bool:
    """Whether ``path`` lies under a mapping that takes new keys (empty, or keyed by numbers)."""
    node: Any = params
    for part in path.split(".")[:-1]:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    if not isinstance(node, Mapping):
        return False
    return not node or all(isinstance(key, int) or str(key).isdigit() for key in node)


def check_param_overrides(
    overrides: Mapping[str, Any], params: Mapping[str, Any], runtime_only: Iterable[str] = ()
) -> None:
    """Raise :class:`UserError` for ``--params`` keys that name no parameter.

    Args:
        overrides: the runtime parameters (``--params``), nested.
        params: the project's parameters without the overrides.
        runtime_only: keys read only from ``${runtime_params:...}`` (e.g. ``run_name``).
    """
    known = set(flatten_dict(params)) | set(runtime_only)
    # a parameter that is itself a mapping may be replaced as a whole
    prefixes = {key.rsplit(".", i)[0] for key in known for i in range(key.count(".") + 1)}
    unknown = [
        key
        for key in flatten_dict(overrides)
        if key not in known and key not in prefixes and not _open_mapping(params, key)
    ]
    if unknown:
        lines = [f"  {key}{did_you_mean(key, sorted(known))}" for key in unknown]
        raise UserError(
            "unknown --params key(s):\n" + "\n".join(lines) + "\n"
            "Parameters live in conf/base/parameters*.yml; `kedro run --params a.b=1` "
            "overrides parameter b of block a."
        )


def missing_inputs_message(
    missing: Mapping[str, str], producers: Mapping[str, str], geodataset: str | None = None
) -> str:
    """What to run for the ``missing`` inputs (``{dataset: where}``).

    ``producers`` maps a dataset to the registered pipeline that writes it; datasets nobody
    writes are raw inputs, made by the geodataset's converter.
    """
    lines = [f"  {name} ({where})" for name, where in missing.items()]
    steps = sorted({producers[name] for name in missing if name in producers})
    raw = [name for name in missing if name not in producers]
    advice = [f"run `kedro run --pipelines {step}` first" for step in steps]
    if raw:
        geo = geodataset or raw[0].split(".")[0]
        script, page = CONVERTERS.get(geo, ("the converter of your data", "docs/data_formats.md"))
        advice.append(f"convert the raw data first: `{script}` (see {page})")
    return "missing input(s) of this run:\n" + "\n".join(lines) + "\n" + "; ".join(advice) + "."
