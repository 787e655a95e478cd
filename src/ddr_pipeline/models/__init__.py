"""Neural networks (KAN, LSTM) and the mapping of their outputs to routing parameters."""

from ddr_pipeline.models.kan import StaticParameterKAN
from ddr_pipeline.models.lstm import DailyParameterLSTM, LSTMState
from ddr_pipeline.models.parameters import (
    cosby_log10_ks,
    denormalize,
    denormalize_all,
    parameter_summary,
    riverbed_conductance,
    routing_parameters,
)
from ddr_pipeline.models.routing_model import NetworkOutputs, RoutingModel, build_models

__all__ = [
    "DailyParameterLSTM",
    "LSTMState",
    "NetworkOutputs",
    "RoutingModel",
    "StaticParameterKAN",
    "build_models",
    "cosby_log10_ks",
    "denormalize",
    "denormalize_all",
    "parameter_summary",
    "riverbed_conductance",
    "routing_parameters",
]
