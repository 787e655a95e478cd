"""Differentiable river routing: Muskingum–Cunge and fixed-coefficient (RAPID) Muskingum."""

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing.constants import (
    B_MIN,
    D_MIN,
    DT_DEFAULT,
    H_BANK_MAX,
    H_BANK_MIN,
    P_DEFAULT,
    Q_MIN,
    S_MIN,
    V_MAX,
    V_MIN,
)
from ddr_pipeline.routing.muskingum import MuskingumResult, muskingum
from ddr_pipeline.routing.muskingum_cunge import (
    MeanDischarge,
    RoutingResult,
    muskingum_cunge,
    muskingum_cunge_means,
)
from ddr_pipeline.routing.utils import daily_mean, gather_gauges, repeat_daily

__all__ = [
    "B_MIN",
    "DT_DEFAULT",
    "D_MIN",
    "H_BANK_MAX",
    "H_BANK_MIN",
    "MeanDischarge",
    "MuskingumResult",
    "P_DEFAULT",
    "Q_MIN",
    "RiverNetwork",
    "RoutingResult",
    "S_MIN",
    "V_MAX",
    "V_MIN",
    "daily_mean",
    "gather_gauges",
    "muskingum",
    "muskingum_cunge",
    "muskingum_cunge_means",
    "repeat_daily",
]
