"""BMI 2.0 component of the trained router (NextGen routing module): see docs/bmi.md."""

from ddr_pipeline.bmi.component import DdrRouting
from ddr_pipeline.bmi.config import BmiConfig, load_bmi_config
from ddr_pipeline.bmi.state import RestartError, RoutingState

__all__ = ["BmiConfig", "DdrRouting", "RestartError", "RoutingState", "load_bmi_config"]
