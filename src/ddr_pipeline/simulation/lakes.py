"""The level-pool lakes of a routed window: table values, learned values and the carried level.

A window's lakes come from the inputs' lakes table (``lakes.parquet``, via the routing
problem). A lake parameter the networks learn (``parameter_registry.LAKE_PARAMETERS``) arrives
per reach among the physical parameters; at each lake reach it replaces the table's value. The
water elevation starts at the table's ``initial_elevation`` unless a state is carried in (the
previous chunk's end, a restart), exactly like the discharge.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ddr_pipeline.data.containers import LakeTable
from ddr_pipeline.parameter_registry import LAKE_PARAMETERS
from ddr_pipeline.routing.lakes import LevelPool
from ddr_pipeline.simulation.settings import RoutingSettings


def split_lake_parameters(
    physical: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(channel parameters, learned lake parameters)`` of a parameter step, both per reach."""
    channel = {k: v for k, v in physical.items() if k not in LAKE_PARAMETERS}
    lake = {k: v for k, v in physical.items() if k in LAKE_PARAMETERS}
    return channel, lake


def level_pool(
    lakes: LakeTable | None,
    learned: Mapping[str, torch.Tensor],
    settings: RoutingSettings,
    elevation: torch.Tensor | None = None,
) -> LevelPool | None:
    """The engine's lakes of a window (None: lakes off, or none on the routed reaches).

    ``learned``: per-reach learned lake parameters (read at the lake reaches, differentiable);
    ``elevation``: (L,) carried water elevation (m), None = the table's initial elevation.
    """
    if not settings.lakes or lakes is None:
        return None
    device = next(iter(learned.values())).device if learned else torch.device("cpu")
    reaches = torch.as_tensor(lakes.reach_index, device=device)
    params = {
        name: learned[name][..., reaches].to(torch.float64)
        if name in learned
        else torch.tensor(values, dtype=torch.float64, device=device)
        for name, values in lakes.params.items()
    }
    if elevation is None:
        elevation = torch.tensor(lakes.initial_elevation, dtype=torch.float64, device=device)
    return LevelPool(
        reaches=lakes.reach_index,
        params=params,
        elevation=elevation,
        scheme=settings.lake_scheme,
        substeps=settings.lake_substeps,
    )
