"""Generate docs/configuration.md from the pydantic models in ``ddr_pipeline.config.training``.

Usage: ``python scripts/gen_config_docs.py`` (write) or ``--check`` (exit 1 if out of date).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import types
import typing
from pathlib import Path

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ddr_pipeline import parameter_registry
from ddr_pipeline.config import pipelines as pipeline_configs
from ddr_pipeline.config import training as config
from ddr_pipeline.config.model_source import ModelSource

DOCS_PATH = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

#: (heading, model, key path) in document order.
SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("Top level", config.TrainingConfig, "training"),
    ("Experiment", config.ExperimentConfig, "training.experiment"),
    ("KAN", config.KANConfig, "training.kan"),
    ("LSTM", config.LSTMConfig, "training.cuda_lstm"),
    ("Parameters", config.ParamsConfig, "training.params"),
    ("Attribute minimums", config.AttributeMinimums, "training.params.attribute_minimums"),
    ("Routing", config.RoutingOptions, "training.routing"),
    ("Loss", config.LossConfig, "training.loss"),
    ("Monitoring", config.MonitoringConfig, "training.monitoring"),
    ("Distributed", config.DistributedConfig, "training.distributed"),
    ("data_processing", pipeline_configs.DataProcessingConfig, "data_processing"),
    ("Gauge split", pipeline_configs.GaugeSplitConfig, "data_processing.gauges"),
    ("Lateral inflow", pipeline_configs.LateralInflowConfig, "data_processing.lateral_inflow"),
    ("evaluation", pipeline_configs.EvaluationConfig, "evaluation"),
    ("Model source", ModelSource, "evaluation.model / routing.model / BMI model"),
    ("Baselines", pipeline_configs.BaselinesConfig, "evaluation.baselines"),
    (
        "Untrained baseline",
        pipeline_configs.UntrainedBaselineConfig,
        "evaluation.baselines.untrained",
    ),
    (
        "Reference baseline",
        pipeline_configs.ReferenceBaselineConfig,
        "evaluation.baselines.reference",
    ),
    ("routing", pipeline_configs.RoutingConfig, "routing"),
]


def _parameter_table() -> list[str]:
    """The parameter registry as a Markdown table."""
    lines = [
        "## Routing parameters (`ddr_pipeline.parameter_registry`)",
        "",
        "| name | routing key | unit | default range | log space | default | observed column | meaning |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in parameter_registry.PARAMETERS:
        lines.append(
            f"| `{spec.name}` | {spec.routing_key or '–'} | {spec.unit} | "
            f"{list(spec.default_range) if spec.default_range else '–'} | "
            f"{'yes' if spec.log_space else 'no'} | "
            f"{spec.default if spec.default is not None else '–'} | "
            f"{spec.channel_column or '–'} | {spec.description} |"
        )
    return [*lines, ""]


_CONSTRAINTS = {
    annotated_types.Gt: ("gt", ">"),
    annotated_types.Ge: ("ge", ">="),
    annotated_types.Lt: ("lt", "<"),
    annotated_types.Le: ("le", "<="),
    annotated_types.MinLen: ("min_length", "len >="),
}


def _constraints(metadata: list[object]) -> str:
    parts = []
    for item in metadata:
        for kind, (attr, symbol) in _CONSTRAINTS.items():
            if isinstance(item, kind):
                parts.append(f"{symbol} {getattr(item, attr)}")
        if isinstance(item, FieldInfo):
            parts.append(_constraints(item.metadata))
    return ", ".join(part for part in parts if part)


def format_type(annotation: object) -> str:
    """Readable type of an annotation (``int > 0 | null``, ``dict[int, float > 0]``, ...)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Annotated:
        bounds = _constraints(list(args[1:]))
        return f"{format_type(args[0])} {bounds}".strip()
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(format_type(arg) for arg in args)
    if origin is typing.Literal:
        return " \\| ".join(str(arg) for arg in args)
    if origin is tuple:
        return "[" + ", ".join(format_type(arg) for arg in args) + "]"
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(format_type(arg) for arg in args)}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _format_default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(section defaults)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        items = ", ".join(f"{key}: {_plain(item)}" for key, item in value.items())
        return f"`{{{items}}}`"
    return f"`{_plain(value)}`"


def _plain(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_plain(item) for item in value) + "]"
    return str(value)


def _section(heading: str, model: type[BaseModel], path: str) -> list[str]:
    lines = [f"## {heading} (`{path}`)", "", "| key | type | default | description |"]
    lines.append("|---|---|---|---|")
    for name, field in model.model_fields.items():
        annotation = field.annotation
        kind = format_type(annotation)
        bounds = _constraints(field.metadata)
        if bounds:
            kind = f"{kind} {bounds}"
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | {kind} | {_format_default(field)} | {description} |")
    return [*lines, ""]


def render() -> str:
    """The full Markdown text of docs/configuration.md."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen_config_docs.py from ddr_pipeline.config.training,",
        "ddr_pipeline.config.pipelines and ddr_pipeline.parameter_registry; do not edit. -->",
        "",
        "Every pipeline's parameters (`conf/base/parameters_*.yml`) are validated before its first",
        "node runs (`ddr_pipeline.project.hooks`; `training` also by",
        "`ddr_pipeline.config.training.load_training_config`). Unknown keys are errors with a did-you-mean;",
        "an error names its key path, e.g. `training.kan.grid: Input should be greater than 0`.",
        f"Learnable parameter names: {', '.join(f'`{n}`' for n in config.LEARNABLE_PARAMETERS)}.",
        "",
    ]
    for heading, model, path in SECTIONS:
        lines.extend(_section(heading, model, path))
    lines.extend(_parameter_table())
    return "\n".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` verify) docs/configuration.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOCS_PATH.read_text() if DOCS_PATH.exists() else ""
        if current != text:
            print(f"{DOCS_PATH} is out of date: run python scripts/gen_config_docs.py")
            return 1
        return 0
    _write_atomic(DOCS_PATH, text)
    print(f"wrote {DOCS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
