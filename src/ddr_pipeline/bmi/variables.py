"""Exchange items of the component: CSDMS-style standard names, units and types.

Lateral inflow and discharge use the names of NOAA's t-route BMI, so a NextGen realization can
swap the routing module without renaming its couplings. The learned parameters have no CSDMS
standard name of their own; their names follow the CSDMS ``object__quantity`` pattern.

Grid 0 is the reach network (one node per routed reach); grid 1, present only when the model
routes level-pool lakes, holds one node per lake, at its outlet reach, in the order of the lakes'
state (the ids in :data:`LAKE_REACH_ID`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    """One exchange item: an array over the nodes of grid ``grid`` (0: reaches, 1: lakes)."""

    name: str
    units: str
    dtype: str
    description: str
    grid: int = 0


#: The reach network and the lakes (grid 1 exists only for a model routing lakes).
REACH_GRID, LAKE_GRID = 0, 1


INFLOW = Variable(
    "land_surface_water_source__volume_flow_rate",
    "m3 s-1",
    "float32",
    "lateral inflow Q' into each reach during the next step (set before each update)",
)
DISCHARGE = Variable(
    "channel_exit_water_x-section__volume_flow_rate",
    "m3 s-1",
    "float32",
    "discharge at each reach outlet at the current time (end of the last step)",
)
OBSERVED = Variable(
    "channel_exit_water_x-section__observed_volume_flow_rate",
    "m3 s-1",
    "float32",
    "observed discharge at the gauged reaches (assimilation.reach_ids) for the steps of the next "
    "update; NaN = none; reset to NaN by each update (docs/data_assimilation.md)",
)
CORRECTION = Variable(
    "channel_exit_water_x-section__volume_flow_rate_assimilation_increment",
    "m3 s-1",
    "float32",
    "nudging correction added at each gauged reach in the last step (0 elsewhere)",
)
REACH_ID = Variable(
    "channel_water__id", "1", "int64", "id of each reach (the geodataset's reach id)"
)
LAKE_ELEVATION = Variable(
    "reservoir_water_surface__elevation",
    "m",
    "float64",
    "water surface elevation of each level-pool lake at the current time (the lakes table's "
    "datum; lakes grid)",
    LAKE_GRID,
)
LAKE_REACH_ID = Variable(
    "reservoir_outlet_channel_water__id",
    "1",
    "int64",
    "id of the outlet reach of each level-pool lake, whose discharge is the lake's outflow "
    "(lakes grid)",
    LAKE_GRID,
)

#: Parameters of every Muskingum-Cunge step (keys of ``muskingum_cunge``'s ``params``) ...
ROUTING_PARAMETERS: tuple[str, ...] = ("n", "q_spatial", "top_width", "side_slope", "p")
#: ... and those of models with the riverbed exchange (``use_leakance``).
LEAKANCE_PARAMETERS: tuple[str, ...] = ("K_D", "d_gw")

#: Routing parameter -> its read-only output variable.
PARAMETERS: dict[str, Variable] = {
    "n": Variable(
        "channel_bottom_water_flow__manning_n_parameter",
        "s m-1/3",
        "float32",
        "Manning's roughness n",
    ),
    "q_spatial": Variable(
        "channel_x-section__shape_exponent",
        "1",
        "float32",
        "cross-section shape exponent q (0 = rectangle, 1 = triangle)",
    ),
    "top_width": Variable("channel_x-section__top_width", "m", "float32", "trapezoid top width W"),
    "side_slope": Variable(
        "channel_x-section_trapezoid_side__run_to_rise_ratio",
        "1",
        "float32",
        "trapezoid side slope z (horizontal : vertical)",
    ),
    "p": Variable(
        "channel_x-section__width_coefficient",
        "m",
        "float32",
        "top width at a depth of 1 m: W = p·(d / 1 m)^q (docs/routing.md)",
    ),
    "K_D": Variable(
        "channel_bed__hydraulic_conductance",
        "s-1",
        "float32",
        "riverbed conductance K_D (leakance models only)",
    ),
    "d_gw": Variable(
        "channel_bed_groundwater__depth_offset",
        "m",
        "float32",
        "groundwater depth term d_gw of the riverbed exchange (leakance models only)",
    ),
}
