"""A DDR (or ddrs) YAML config -> the matching project parameters (Kedro environment files).

DDR keys map to the project's sections (docs/coming_from_ddr.md has the table):
``experiment.start_time/end_time`` -> ``data_processing.periods.train``, ``testing.start_time/
end_time`` -> ``periods.test``, ``experiment.*`` -> ``training.experiment.*``
(``grad_clip_max_norm`` -> ``grad_clip_norm``), ``kan`` / ``kan_head`` -> ``training.kan`` (and
``data_processing.attributes``), ``params.*`` -> ``training.params.*``, ``seed`` ->
``training.experiment.seed``, ``testing.batch_size`` (days per inference batch) ->
``evaluation.chunk_days``. DDR since PR #192 routes with the trapezoid-exact celerity, Cunge X
and the L1 loss, and derives top width and side slope from ``p_spatial`` (``routing.geometry:
ddr`` when the KAN learns neither), so those are set too. Keys with no equivalent are returned with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ddr_pipeline.parameter_registry import LEARNABLE_PARAMETERS

#: DDR keys the converter consumes itself (not parameters).
CONSUMED = {
    "data_sources": "read by ddr-convert-ddr (the bundle's stores)",
    "geodataset": "read by ddr-convert-ddr (how to read the bundle); the project's geodataset is "
    "the converted folder's name",
    "s3_region": "read by ddr-convert-ddr (--region)",
    "experiment.max_area_diff_sqkm": "applied by ddr-convert-ddr (gauge filter)",
}
#: DDR keys without a project equivalent, and why.
NO_EQUIVALENT = {
    "mode": "the project runs pipelines (data_processing, training, evaluation, routing)",
    "workflow": "the project runs pipelines (make juniata runs train-and-test)",
    "np_seed": "one seed (training.experiment.seed) drives torch, numpy and python",
    "experiment.checkpoint": "DDR checkpoints hold only DDR's KAN; the project resumes its own",
    "params.save_path": "runs are written under data/06_models/<run_name>",
    "params.sparse_solver": "the numba engine solves the network in topological order",
    "params.use_cuda_graphs": "the CUDA engine is selected by training.experiment.device",
    "params.ddr_match": "deprecated in ddrs; the project routes one physics set per config",
    "testing.rho": "evaluation routes the whole period in chunks (evaluation.chunk_days)",
    "name": "run names are ddr-<geodataset>-training unless --params run_name=<run>",
}
DDR_KAN_KEYS = ("hidden_size", "num_hidden_layers", "grid", "k")
EXPERIMENT_KEYS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "rho": "rho",
    "warmup": "warmup",
    "shuffle": "shuffle",
    "learning_rate": "learning_rate",
    "grad_clip_max_norm": "grad_clip_norm",
}
#: Channel geometry DDR (after v0.5.1) derives from p_spatial: learning it means geometry learned.
GEOMETRY = ("top_width", "side_slope")
PARAMS_KEYS = ("parameter_ranges", "log_space_parameters", "defaults", "attribute_minimums")


class DdrConfigError(ValueError):
    """A DDR config that cannot be mapped (names the key)."""


@dataclass
class ConvertedConfig:
    """Project parameter sections and the DDR keys that have no equivalent."""

    sections: dict[str, dict[str, Any]]
    unmapped: dict[str, str] = field(default_factory=dict)  # DDR key -> reason

    def write(self, folder: str | Path, source: str) -> list[Path]:
        """Write ``parameters_<section>.yml`` files into ``folder``; return their paths."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, body in self.sections.items():
            path = out / f"parameters_{name}.yml"
            header = (
                f"# Written by ddr-convert-ddr from {source} (docs/coming_from_ddr.md).\n"
                "# Soft-merged over conf/base: only these keys change.\n"
            )
            path.write_text(header + yaml.safe_dump({name: body}, sort_keys=False))
            paths.append(path)
        return paths


def ddr_date(value: object, key: str) -> str:
    """DDR's ``YYYY/MM/DD`` (or ISO) date as ``YYYY-MM-DD``.

    Raises:
        DdrConfigError: naming ``key`` when the value is not a date.
    """
    text = str(value).strip().replace("/", "-")
    parts = text.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise DdrConfigError(f"DDR config: {key}={value!r} is not a YYYY/MM/DD date")
    year, month, day = (int(p) for p in parts)
    return f"{year:04d}-{month:02d}-{day:02d}"


def _period(block: Mapping[str, Any], where: str) -> list[str] | None:
    if "start_time" not in block and "end_time" not in block:
        return None
    missing = [k for k in ("start_time", "end_time") if k not in block]
    if missing:
        raise DdrConfigError(f"DDR config: {where} has no {missing[0]}")
    return [
        ddr_date(block["start_time"], f"{where}.start_time"),
        ddr_date(block["end_time"], f"{where}.end_time"),
    ]


def run_name_default(name: str) -> str:
    """The run-name parameter of a converted environment: ``ddr-<name>-training`` unless
    ``--params run_name=<run>``."""
    return f"${{runtime_params:run_name, ddr-{name}-training}}"


def _kan(config: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    for key in ("kan", "kan_head"):
        if isinstance(config.get(key), Mapping):
            return dict(config[key]), key
    raise DdrConfigError("DDR config: no kan (DDR) or kan_head (ddrs) block")


def _geometry(kan: Mapping[str, Any]) -> str:
    """``routing.geometry`` of a DDR KAN: ``ddr`` (top width and side slope derived from
    ``p_spatial`` and the depth each step, as DDR does) unless it learns either of them
    (DDR v0.5.1 and earlier: ``learned``)."""
    learned = set(kan.get("learnable_parameters", []))
    return "learned" if learned & set(GEOMETRY) else "ddr"


def _device(value: object) -> str:
    text = str(value).lower()
    return text if text in ("cpu", "cuda") or text.startswith("cuda:") else "auto"


def _training(config: Mapping[str, Any], name: str, unmapped: dict[str, str]) -> dict[str, Any]:
    experiment = config.get("experiment", {}) or {}
    kan, kan_key = _kan(config)
    out: dict[str, Any] = {"geodataset": name, "run_name": run_name_default(name)}
    exp = {EXPERIMENT_KEYS[k]: v for k, v in experiment.items() if k in EXPERIMENT_KEYS}
    if "seed" in config:
        exp["seed"] = int(config["seed"])
    if "device" in config:
        exp["device"] = _device(config["device"])
        if exp["device"] == "auto":
            unmapped["device"] = f"{config['device']!r} -> auto (CUDA when present, else CPU)"
    if "learning_rate" in exp:
        exp["learning_rate"] = {int(k): float(v) for k, v in exp["learning_rate"].items()}
    out["experiment"] = exp
    out["kan"] = {
        k: kan[k] for k in (*DDR_KAN_KEYS, "input_var_names", "learnable_parameters") if k in kan
    }
    for extra in sorted(set(kan) - set(out["kan"])):
        unmapped[f"{kan_key}.{extra}"] = "no KAN option of that name"
    out["cuda_lstm"] = None
    out["params"] = _params(config.get("params", {}) or {}, unmapped)
    # DDR >= PR #192 (no flag there): Cunge X, exact celerity, geometry from p_spatial
    out["routing"] = {"x": "cunge", "celerity": "exact", "geometry": _geometry(out["kan"])}
    tau = (config.get("params", {}) or {}).get("tau")
    if tau is not None:
        out["routing"]["output_shift_hours"] = output_shift_of_tau(int(tau))
        unmapped["params.tau"] = (
            f"{tau} (ddrs' convention since 2026-08: day i pools hours [tau + 24i, tau + 24i + 24) "
            f"of the trajectory whose hour 0 is the initial state) -> routing.output_shift_hours "
            f"{out['routing']['output_shift_hours']} (the same hours: the project counts the "
            "first end-of-step state as hour 1). A DDR-Python config (legacy slice "
            "[13+tau : -11+tau], day i vs observation day i+1) needs tau - 12 instead"
        )
    out["loss"] = {"name": "mae"}  # DDR's L1 loss (PR #166)
    return out


def output_shift_of_tau(tau: int) -> int:
    """``routing.output_shift_hours`` pooling the same hours as ddrs' ``params.tau`` (its
    2026-08 convention, ``0 <= tau < 24``): ``tau - 1``."""
    if not 0 <= tau < 24:
        raise ValueError(f"params.tau must be in [0, 24) hours (ddrs' convention), got {tau}")
    return tau - 1


def _params(params: Mapping[str, Any], unmapped: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in PARAMS_KEYS:
        if key in params:
            out[key] = params[key]
    ranges = out.get("parameter_ranges", {})
    unknown = sorted(set(ranges) - set(LEARNABLE_PARAMETERS))
    for name in unknown:
        unmapped[f"params.parameter_ranges.{name}"] = "not a parameter of the project's registry"
    if ranges:
        out["parameter_ranges"] = {
            k: [float(v[0]), float(v[1])] for k, v in ranges.items() if k not in unknown
        }
    for key in sorted(set(params) - set(PARAMS_KEYS)):
        unmapped[f"params.{key}"] = NO_EQUIVALENT.get(f"params.{key}", "no equivalent")
    return out


def convert_ddr_config(config: Mapping[str, Any], name: str) -> ConvertedConfig:
    """Map a DDR/ddrs config (parsed YAML) to project parameter sections for geodataset ``name``.

    Returns:
        Sections ``data_processing``, ``training``, ``evaluation``, ``routing`` and the DDR keys
        with no equivalent (``unmapped``: key -> reason; consumed keys are not listed).

    Raises:
        DdrConfigError: no KAN block, or malformed dates (key named).
    """
    unmapped: dict[str, str] = {}
    training = _training(config, name, unmapped)
    experiment = config.get("experiment", {}) or {}
    testing = config.get("testing", {}) or {}
    periods = {"train": _period(experiment, "experiment"), "test": _period(testing, "testing")}
    data_processing: dict[str, Any] = {
        "geodataset": name,
        "periods": {k: v for k, v in periods.items() if v is not None},
        "gauges": {"validation_fraction": 0.0},  # DDR trains on every gauge of the CSV
        "attributes": list(training["kan"].get("input_var_names", [])) or None,
        "forcings": [],  # no LSTM: no forcings store
    }
    evaluation: dict[str, Any] = {"geodataset": name, "run_name": run_name_default(name)}
    if "batch_size" in testing:
        evaluation["chunk_days"] = int(testing["batch_size"])
    for key in sorted(set(experiment) - set(EXPERIMENT_KEYS) - {"start_time", "end_time"}):
        full = f"experiment.{key}"
        if full not in CONSUMED:
            unmapped[full] = NO_EQUIVALENT.get(full, "no equivalent")
    for key in sorted(set(testing) - {"start_time", "end_time", "batch_size"}):
        unmapped[f"testing.{key}"] = NO_EQUIVALENT.get(f"testing.{key}", "no equivalent")
    for key in sorted(set(config) - _top_level_mapped()):
        unmapped[key] = NO_EQUIVALENT.get(key, "no equivalent")
    return ConvertedConfig(
        sections={
            "data_processing": data_processing,
            "training": training,
            "evaluation": evaluation,
            "routing": {"geodataset": name},
        },
        unmapped=unmapped,
    )


def _top_level_mapped() -> set[str]:
    return {
        "experiment",
        "testing",
        "kan",
        "kan_head",
        "params",
        "seed",
        "device",
        *(k for k in CONSUMED if "." not in k),
    }


def load_ddr_config(path: str | Path) -> dict[str, Any]:
    """Parse a DDR YAML config (Hydra interpolations are not resolved).

    Raises:
        DdrConfigError: the file is not a YAML mapping (path named).
    """
    document = yaml.safe_load(Path(path).read_text())
    if not isinstance(document, Mapping):
        raise DdrConfigError(f"{path}: not a YAML mapping (a DDR config)")
    return dict(document)
