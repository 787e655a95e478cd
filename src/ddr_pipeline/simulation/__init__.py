"""One simulation path: the routing problem, the routing settings and the rollout.

Training, validation, test scoring, evaluation and domain routing all route through
:func:`rollout_window` (one window) or :func:`rollout` (a period in chunks carrying state).
"""

from ddr_pipeline.routing.lakes import LevelPool
from ddr_pipeline.routing.nudging import Nudging, NudgingResult, NudgingState
from ddr_pipeline.simulation.assimilation import AssimilationRecord, GaugeAssimilation
from ddr_pipeline.simulation.lakes import level_pool, split_lake_parameters
from ddr_pipeline.simulation.problem import (
    RoutingProblem,
    WindowInputs,
    gauge_problem,
    reach_flow_scale,
    reach_problem,
    window_inputs,
)
from ddr_pipeline.simulation.rollout import (
    PINNED_EPS,
    NonFiniteOutputsError,
    RolloutResult,
    RoutedSteps,
    WindowResult,
    output_health,
    parameter_means,
    physical_parameters,
    rollout,
    rollout_window,
    route_steps,
    simulate,
)
from ddr_pipeline.simulation.settings import RoutingSettings
from ddr_pipeline.simulation.sources import (
    ConstantParameters,
    FeatureIndex,
    ParameterSource,
    ParameterStep,
    TrainedParameters,
    network_outputs,
)

__all__ = [
    "AssimilationRecord",
    "GaugeAssimilation",
    "LevelPool",
    "Nudging",
    "NudgingResult",
    "NudgingState",
    "ConstantParameters",
    "FeatureIndex",
    "NonFiniteOutputsError",
    "PINNED_EPS",
    "ParameterSource",
    "ParameterStep",
    "RolloutResult",
    "RoutedSteps",
    "RoutingProblem",
    "RoutingSettings",
    "TrainedParameters",
    "WindowInputs",
    "WindowResult",
    "gauge_problem",
    "network_outputs",
    "output_health",
    "parameter_means",
    "physical_parameters",
    "reach_flow_scale",
    "reach_problem",
    "rollout",
    "rollout_window",
    "route_steps",
    "simulate",
    "window_inputs",
    "level_pool",
    "split_lake_parameters",
]
