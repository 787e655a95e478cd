"""Routing settings derived once from the configuration: step, floors, leakance, defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ddr_pipeline.config.training import TrainingConfig
from ddr_pipeline.routing import constants as K

SECONDS_PER_DAY = 86400.0


def steps_per_day(dt: float) -> int:
    """Routing steps of ``dt`` seconds in one day; ``ValueError`` unless ``dt`` divides a day."""
    steps = SECONDS_PER_DAY / dt if dt > 0 else 0.0
    if not (steps >= 1 and steps == int(steps)):
        raise ValueError(f"dt={dt} s does not divide one day ({SECONDS_PER_DAY:.0f} s)")
    return int(steps)


@dataclass(frozen=True)
class RoutingSettings:
    """Everything the Muskingum-Cunge engine needs besides the inputs and the parameters.

    Built by :meth:`from_config` from the training configuration (``params`` and ``routing``), so
    training, validation, evaluation and routing route with the same physics (floors, leakance,
    X default, Cunge options).
    """

    dt: float = K.DT_DEFAULT
    leakance: bool = False
    q_min: float = K.Q_MIN
    d_min: float = K.D_MIN
    b_min: float = K.B_MIN
    v_min: float = K.V_MIN
    s_min: float = K.S_MIN
    x_default: float | None = None
    x_mode: str = "data"
    celerity: str = "wide_rectangle"
    geometry: str = "learned"
    #: Output-hour offset of the daily means (``routing.output_shift_hours``): day ``d`` pools
    #: the end-of-step states of hours ``24d+1+shift .. 24d+24+shift``. Not an engine option:
    #: :mod:`ddr_pipeline.simulation.pooling` applies it to the engine's sub-daily means.
    output_shift_hours: int = 0
    #: Level-pool lakes (``routing.lakes``): whether the inputs' lakes are routed as lakes, their
    #: scheme and RK3 sub-steps. Not engine keywords: :mod:`ddr_pipeline.simulation.lakes`
    #: builds the engine's ``LevelPool`` from them.
    lakes: bool = False
    lake_scheme: str = "conservative"
    lake_substeps: int = 1

    def __post_init__(self) -> None:
        steps = steps_per_day(self.dt)
        shift = self.output_shift_hours * 3600.0 / self.dt
        if shift != int(shift) or abs(int(shift)) >= steps:
            raise ValueError(
                f"output_shift_hours={self.output_shift_hours} must be a whole number of "
                f"{self.dt:g}-s steps and less than a day"
            )

    @property
    def shift_steps(self) -> int:
        """The output-hour offset in routing steps (signed)."""
        return int(self.output_shift_hours * 3600.0 / self.dt)

    @classmethod
    def from_config(cls, config: TrainingConfig, dt: float = K.DT_DEFAULT) -> RoutingSettings:
        """Settings of ``params`` (``attribute_minimums``, ``use_leakance``, X) and ``routing``."""
        params = config.params
        floors = params.attribute_minimums
        return cls(
            dt=dt,
            leakance=params.use_leakance,
            q_min=floors.discharge,
            d_min=floors.depth,
            b_min=floors.bottom_width,
            v_min=floors.velocity,
            s_min=floors.slope,
            x_default=params.defaults.get("x"),
            output_shift_hours=config.routing.output_shift_hours,
            lakes=config.routing.lakes.enabled,
            lake_scheme=config.routing.lakes.scheme,
            lake_substeps=config.routing.lakes.substeps,
            **config.routing.engine_kwargs(),
        )

    @property
    def steps_per_day(self) -> int:
        """Routing steps per day."""
        return steps_per_day(self.dt)

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`ddr_pipeline.routing.muskingum_cunge`."""
        options = asdict(self)
        for key in ("x_default", "output_shift_hours", "lakes", "lake_scheme", "lake_substeps"):
            del options[key]
        return options

    def channel(self, channel: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``channel`` with missing (NaN) Muskingum X filled with :attr:`x_default`."""
        x = channel["x"]
        if self.x_default is None or bool(torch.isfinite(x).all()):
            return dict(channel)
        filled = torch.where(torch.isfinite(x), x, torch.full_like(x, self.x_default))
        return {**channel, "x": filled}
