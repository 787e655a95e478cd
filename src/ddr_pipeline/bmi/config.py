"""The component's one YAML configuration file (pydantic v2, unknown keys are errors).

Relative paths are resolved against the folder of the configuration file, so a configuration
can travel with its files (the way NextGen realizations reference per-run configurations).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ddr_pipeline.config.model_source import ModelSource
from ddr_pipeline.config.training import (
    ConfigError,
    LaxDate,
    LaxDateTime,
    format_validation_error,
)
from ddr_pipeline.simulation.settings import steps_per_day

_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+)$")


class _Strict(BaseModel):
    """Unknown keys are errors; types are strict and numbers finite (as the pipeline configs)."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, strict=True, allow_inf_nan=False
    )


class NetworkSource(_Strict):
    """The river network and the model's inputs on it (a geodataset after ``data_processing``)."""

    model_inputs: str = Field(description="model_inputs.zarr of the geodataset.")
    normalization_stats: str = Field(
        description="normalization_stats.json (a file, or Kedro's versioned folder: latest)."
    )
    reaches: str = Field(description="reaches.parquet (GeoParquet): grid node coordinates.")
    target_reach_ids: list[int] = Field(
        default_factory=list, description="Route only their upstream closure ([] = every reach)."
    )


class TimeSettings(_Strict):
    """Model time: seconds since ``start``; one ``update`` is one routing step of ``dt``."""

    start: LaxDateTime | None = Field(
        None,
        description="Model time 0 (default: the restart file's time, else the inputs' first day).",
    )
    end: LaxDate | None = Field(
        None, description="Last day routed, inclusive (default: the inputs' last day)."
    )
    dt: float = Field(3600.0, gt=0, description="Routing step (s); must divide one day.")

    @field_validator("dt")
    @classmethod
    def _divides_a_day(cls, dt: float) -> float:
        steps_per_day(dt)
        return dt


class StateFiles(_Strict):
    """Restart files: read at ``initialize``, written at ``finalize``."""

    restart_file: str | None = Field(
        None, description="Initial state: a restart file of this component (or discharge only)."
    )
    write_restart: str | None = Field(None, description="Restart file written by finalize().")


class BmiAssimilation(_Strict):
    """Streamflow nudging toward observed discharge at gauged reaches (docs/data_assimilation.md)."""

    enabled: bool = Field(False, description="Nudge the gauged reaches toward observations.")
    reach_ids: list[int] = Field(
        default_factory=list,
        description="Gauged reaches (one gauge each) whose observations are set.",
    )
    gain: float = Field(1.0, ge=0.0, le=1.0, description="Share of the gap closed (1 = replace).")
    decay_minutes: float = Field(
        120.0, ge=0.0, description="e-folding time of the correction after the last observation."
    )

    @model_validator(mode="after")
    def _gauges(self) -> BmiAssimilation:
        if self.enabled and not self.reach_ids:
            raise ValueError(
                "assimilation.enabled needs assimilation.reach_ids (the gauged reaches)"
            )
        if len(set(self.reach_ids)) != len(self.reach_ids):
            raise ValueError("assimilation.reach_ids must be unique (one gauge per reach)")
        if self.reach_ids and not self.enabled:
            raise ValueError("assimilation.reach_ids given but assimilation.enabled is false")
        return self


class BmiConfig(_Strict):
    """Configuration of :class:`ddr_pipeline.bmi.DdrRouting`."""

    model: ModelSource
    network: NetworkSource
    time: TimeSettings = Field(default_factory=TimeSettings)
    state: StateFiles = Field(default_factory=StateFiles)
    device: str = Field("cpu", description="torch device of the routing (cpu, cuda, cuda:N).")
    assimilation: BmiAssimilation = Field(default_factory=BmiAssimilation)

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not _DEVICE.match(device):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")
        return device

    @field_validator("model")
    @classmethod
    def _one_source(cls, model: ModelSource) -> ModelSource:
        if not model.named:
            raise ValueError("give model.checkpoint, model.mlflow_model_uri or model.run_name")
        return model


_PATH_KEYS = (
    ("model", "checkpoint"),
    ("model", "models_dir"),
    ("network", "model_inputs"),
    ("network", "normalization_stats"),
    ("network", "reaches"),
    ("state", "restart_file"),
    ("state", "write_restart"),
)


def _resolved(raw: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """``raw`` with every relative path key made absolute against ``base``."""
    out = {key: dict(value) if isinstance(value, Mapping) else value for key, value in raw.items()}
    for section, key in _PATH_KEYS:
        block = out.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str):
            block[key] = str((base / Path(block[key]).expanduser()).resolve())
    return out


def load_bmi_config(path: str | Path) -> BmiConfig:
    """Read and validate the YAML file; :class:`ConfigError` lines name the offending key."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"BMI configuration file {source} does not exist")
    raw = yaml.safe_load(source.read_text())
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return BmiConfig.model_validate(_resolved(raw, source.resolve().parent))
    except ValidationError as error:
        raise ConfigError(f"{source}:\n{format_validation_error(error, root='bmi')}") from None
