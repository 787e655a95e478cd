"""Bad input raises a clear error naming what is wrong."""

from __future__ import annotations

import pytest
import torch
from reference import random_network
from routing_inputs import make_inputs

from ddr_pipeline.routing import RiverNetwork, muskingum, muskingum_cunge


@pytest.fixture
def case():
    net = random_network(6, seed=1)
    qlat, channel, params = make_inputs(6, 5, seed=1)
    return net, qlat, channel, params


def test_nan_inflow_names_reach_and_step(case) -> None:
    net, qlat, channel, params = case
    qlat[3, 2] = float("nan")
    with pytest.raises(
        ValueError,
        match=rf"lateral_inflow: non-finite value nan at reach id {net.ids[2]}, time step 3",
    ):
        muskingum_cunge(net, qlat, channel, params)


def test_negative_inflow(case) -> None:
    net, qlat, channel, params = case
    qlat[0, 4] = -1.0
    with pytest.raises(
        ValueError, match=rf"lateral_inflow: value -1.0 outside .* reach id {net.ids[4]}"
    ):
        muskingum_cunge(net, qlat, channel, params)


def test_inf_parameter(case) -> None:
    net, qlat, channel, params = case
    params["top_width"][1] = float("inf")
    with pytest.raises(
        ValueError, match=rf"top_width: non-finite value inf at reach id {net.ids[1]}"
    ):
        muskingum_cunge(net, qlat, channel, params)


@pytest.mark.parametrize(
    ("name", "value"),
    [("n", 0.0), ("n", -0.1), ("q_spatial", 1.5), ("x", 0.6), ("length", 0.0), ("side_slope", 0.0),
     ("K_D", -1e-9), ("slope", -0.1), ("p", 0.0)],
)  # fmt: skip
def test_out_of_range_parameters(case, name: str, value: float) -> None:
    net, qlat, channel, params = case
    target = channel if name in channel else params
    target[name] = target[name].clone()
    target[name][0] = value
    with pytest.raises(ValueError, match=rf"{name}: value .* outside .* at reach id {net.ids[0]}"):
        muskingum_cunge(net, qlat, channel, params, leakance=True)


def test_shape_mismatches(case) -> None:
    net, qlat, channel, params = case
    with pytest.raises(ValueError, match=r"lateral_inflow must have shape \(T, 6\)"):
        muskingum_cunge(net, qlat[:, :4], channel, params)
    params["n"] = torch.full((3, 6), 0.05, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"n must be a scalar, shape \(6,\)"):
        muskingum_cunge(net, qlat, channel, params)


def test_missing_and_unknown_inputs(case) -> None:
    net, qlat, channel, params = case
    del params["K_D"]
    with pytest.raises(KeyError, match="K_D"):
        muskingum_cunge(net, qlat, channel, params, leakance=True)
    muskingum_cunge(net, qlat, channel, params)  # K_D not needed without leakance
    with pytest.raises(KeyError, match="unknown routing inputs"):
        muskingum_cunge(net, qlat, channel, {**params, "manning": 0.1})


def test_bad_initial_state_dt_and_backend(case) -> None:
    net, qlat, channel, params = case
    with pytest.raises(ValueError, match="initial_state"):
        muskingum_cunge(
            net, qlat, channel, params, initial_state=-torch.ones(6, dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="dt"):
        muskingum_cunge(net, qlat, channel, params, dt=0.0)
    with pytest.raises(ValueError, match="backend"):
        muskingum_cunge(net, qlat, channel, params, backend="cuda-magic")


def test_muskingum_bad_k_and_substeps() -> None:
    net = RiverNetwork.from_ids([1, 2], [2, 0])
    q = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="k: value 0.0 outside"):
        muskingum(net, q, k=torch.tensor([0.0, 1.0], dtype=torch.float64), x=0.2, dt=60.0)
    with pytest.raises(ValueError, match="substeps"):
        muskingum(net, q, k=100.0, x=0.2, dt=60.0, substeps=0)
