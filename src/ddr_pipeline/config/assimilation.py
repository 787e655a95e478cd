"""Configuration of streamflow data assimilation (nudging toward gauges; docs/data_assimilation.md).

One schema for the ``routing`` pipeline (``routing.assimilation``) and the BMI component
(``assimilation`` of its YAML file). Off by default.
"""

from __future__ import annotations

import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AssimilationConfig(BaseModel):
    """Nudging of gauged reaches toward observed discharge (forward only, never in training)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    enabled: bool = Field(False, description="Nudge gauged reaches toward observations.")
    gain: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of the gap to an observation closed (1 = replace)."
    )
    decay_minutes: float = Field(
        120.0, ge=0.0, description="e-folding time of the correction after the last observation."
    )
    gauges: list[str] = Field(
        default_factory=list,
        description="STAIDs assimilated ([] = every gauge of the domain on a single reach).",
    )
    usgs_timeslices: str | None = Field(
        None,
        description="Glob of NWM usgsTimeSlice files (else the daily series of model_inputs).",
    )
    min_quality: float = Field(
        1.0, ge=0.0, le=100.0, description="Time slices: lowest discharge_quality kept (0-100)."
    )
    assimilate_until: datetime.datetime | None = Field(
        None,
        description="Hindcast/forecast: no observation from this time on (null = all).",
    )
    last_obs_in: str | None = Field(
        None, description="nudgingLastObs file giving the last observations at the start."
    )
    last_obs_out: str | None = Field(
        None, description="nudgingLastObs file written with the last observations at the end."
    )

    @model_validator(mode="after")
    def _settings_need_enabled(self) -> AssimilationConfig:
        if not self.enabled and (self.gauges or self.usgs_timeslices or self.last_obs_in):
            raise ValueError("assimilation settings given but assimilation.enabled is false")
        return self
