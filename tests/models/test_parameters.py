"""Denormalisation, K_D from the Cosby PTF, routing_parameters, build_models/RoutingModel."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from ddr_pipeline.config.training import ParamsConfig, load_training_config
from ddr_pipeline.models import (
    RoutingModel,
    build_models,
    cosby_log10_ks,
    denormalize,
    riverbed_conductance,
    routing_parameters,
)

N = 4


def test_linear_endpoints_and_midpoint() -> None:
    s = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(denormalize(s, -3.0, 1.0), torch.tensor([-3.0, -1.0, 1.0]))


def test_log_endpoints_and_geometric_midpoint() -> None:
    s = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    got = denormalize(s, 0.01, 300.0, log_space=True)
    expected = torch.tensor([0.01, math.sqrt(0.01 * 300.0), 300.0], dtype=torch.float64)
    assert torch.allclose(got, expected, rtol=1e-12)


def test_denormalize_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="positive range"):
        denormalize(torch.tensor([0.5]), 0.0, 1.0, log_space=True)
    with pytest.raises(ValueError, match="low < high"):
        denormalize(torch.tensor([0.5]), 1.0, 1.0)


def test_kd_from_cosby_ptf_value() -> None:
    # sand 40 %, clay 20 %: log10 Ks(in/h) = -0.6 + 0.504 - 0.128 = -0.224; 1 in/h = 7.056e-6 m/s
    log10_ks = cosby_log10_ks(torch.tensor([40.0], dtype=torch.float64), torch.tensor([20.0]))
    kd = riverbed_conductance(torch.tensor([0.0], dtype=torch.float64), log10_ks)
    assert float(kd) == pytest.approx(7.056e-6 * 10**-0.224, rel=1e-9)
    kd_up = riverbed_conductance(torch.tensor([1.0], dtype=torch.float64), log10_ks)
    assert float(kd_up / kd) == pytest.approx(10.0)


def _static() -> dict[str, torch.Tensor]:
    half = torch.full((N,), 0.5)
    return {"q_spatial": half, "top_width": half, "side_slope": half, "K_D_delta": half}


def _daily(days: int = 3) -> dict[str, torch.Tensor]:
    return {"n": torch.zeros(days, N), "d_gw": torch.ones(days, N)}


def test_routing_parameters_keys_shapes_and_values() -> None:
    params = ParamsConfig(use_leakance=True)
    out = routing_parameters(_static(), _daily(), params, N)
    assert set(out) == {"n", "q_spatial", "top_width", "side_slope", "p", "K_D", "d_gw"}
    assert out["n"].shape == out["d_gw"].shape == (3, N)
    assert torch.allclose(out["n"], torch.full((3, N), 0.015))
    assert torch.allclose(out["d_gw"], torch.full((3, N), 300.0))
    assert torch.allclose(out["p"], torch.full((N,), 21.0))
    assert torch.allclose(out["top_width"], torch.full((N,), math.sqrt(5000.0)))
    expected_kd = 10 ** (params.prior_log10_ks - 1.0)  # K_D_delta = -3 + 0.5 * 4 = -1
    assert torch.allclose(out["K_D"], torch.full((N,), expected_kd), rtol=1e-5)


def test_routing_parameters_with_ptf_and_without_leakance() -> None:
    params = ParamsConfig(use_leakance=True, ptf_sand_var="sand", ptf_clay_var="clay")
    ptf = {"sand": torch.full((N,), 40.0), "clay": torch.full((N,), 20.0)}
    out = routing_parameters(_static(), _daily(), params, N, ptf_inputs=ptf)
    assert torch.allclose(out["K_D"], torch.full((N,), 7.056e-6 * 10**-1.224), rtol=1e-5)
    with pytest.raises(KeyError, match="sand"):
        routing_parameters(_static(), _daily(), params, N)
    no_leak = routing_parameters(_static(), _daily(), ParamsConfig(), N)
    assert "K_D" not in no_leak and "d_gw" not in no_leak


def test_observed_geometry_overrides_where_finite() -> None:
    params = ParamsConfig(observed_geometry=["top_width"])
    observed = {"top_width": torch.tensor([10.0, float("nan"), 30.0, float("nan")])}
    static = {name: v.clone().requires_grad_(True) for name, v in _static().items()}
    out = routing_parameters(static, _daily(), params, N, observed=observed)
    learned = math.sqrt(5000.0)
    assert torch.allclose(out["top_width"], torch.tensor([10.0, learned, 30.0, learned]))
    out["top_width"].sum().backward()
    grad = static["top_width"].grad
    assert torch.isfinite(grad).all() and grad[0] == 0 and grad[1] > 0
    with pytest.raises(KeyError, match="top_width"):
        routing_parameters(_static(), _daily(), params, N)


def test_routing_parameters_shape_errors() -> None:
    with pytest.raises(ValueError, match="n_reaches=5"):
        routing_parameters(_static(), _daily(), ParamsConfig(), 5)
    with pytest.raises(ValueError, match="both static and daily"):
        routing_parameters({"n": torch.zeros(N)}, _daily(), ParamsConfig(), N)


@pytest.fixture
def cfg():
    return load_training_config(
        {
            "geodataset": "drb",
            "experiment": {"seed": 3},
            "kan": {
                "input_var_names": ["a", "b"],
                "hidden_size": 5,
                "grid": 3,
                "num_hidden_layers": 1,
            },
            "cuda_lstm": {"input_var_names": ["a"], "hidden_size": 6, "dropout": 0.0},
            "params": {"use_leakance": True},
        }
    )


def test_build_models_and_routing_model(cfg) -> None:
    model = build_models(cfg, n_kan_inputs=2, n_lstm_inputs=1)
    assert isinstance(model, RoutingModel)
    assert model.learned_parameters == [*cfg.kan.learnable_parameters, "n", "d_gw"]
    outputs = model(torch.randn(N, 2), torch.randn(7, N, 3), torch.randn(N, 1))
    params = model.routing_parameters(outputs, N)
    assert params["n"].shape == (7, N) and params["top_width"].shape == (N,)
    stats = model.describe(outputs)
    assert set(stats) == {
        f"{p}_{s}" for p in model.learned_parameters for s in ("min", "median", "max")
    }
    assert 0.015 <= stats["n_min"] <= stats["n_median"] <= stats["n_max"] <= 0.25
    clone = pickle.loads(pickle.dumps(model))
    assert clone.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match="n_kan_inputs=3"):
        build_models(cfg, n_kan_inputs=3)
    with pytest.raises(ValueError, match="forcings and lstm_attributes are required"):
        model(torch.randn(N, 2))
