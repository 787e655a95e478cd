"""Losses on daily means: known values, NaN masking per day, NSE loss, warm-up, shape errors."""

from __future__ import annotations

import pytest
import torch

from ddr_pipeline.training.losses import NoValidObservationsError, routing_loss

NAN = float("nan")


def _pair():
    prediction = torch.tensor([[1.0, 2.0, 5.0], [2.0, 4.0, 5.0], [3.0, 6.0, 5.0]])
    observation = torch.tensor([[1.0, NAN, NAN], [4.0, 4.0, NAN], [3.0, 3.0, NAN]])
    return prediction, observation


def test_mse_and_mae_mask_missing_days() -> None:
    prediction, observation = _pair()
    # valid pairs: gauge 0 errors (0, -2, 0), gauge 1 errors (0, 3); gauge 2 has none
    assert float(routing_loss(prediction, observation, "mse")) == pytest.approx(13.0 / 5.0)
    assert float(routing_loss(prediction, observation, "mae")) == pytest.approx(5.0 / 5.0)


def test_warmup_days_are_excluded() -> None:
    prediction, observation = _pair()
    # after 1 warm-up day: gauge 0 errors (-2, 0), gauge 1 errors (0, 3)
    assert float(routing_loss(prediction, observation, "mse", warmup=1)) == pytest.approx(13 / 4)


def test_nse_loss_is_one_minus_nse_averaged() -> None:
    prediction, observation = _pair()
    # gauge 0: obs (1, 4, 3), mean 8/3, SSE 4, SST 14/3 -> 6/7; gauge 1: obs (4, 3), SSE 9, SST 0.5 -> 18
    expected = (4.0 / (14.0 / 3.0) + 9.0 / 0.5) / 2.0
    got = routing_loss(prediction.double(), observation.double(), "nse", eps=1e-12)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    eps = routing_loss(prediction.double(), observation.double(), "nse", eps=1.0)
    assert float(eps) == pytest.approx((4.0 / (14 / 3 + 1) + 9.0 / 1.5) / 2.0)


def test_nse_perfect_prediction_is_zero() -> None:
    observation = torch.rand(20, 3) + 1.0
    observation[3, 1] = NAN
    prediction = torch.nan_to_num(observation, nan=123.0)
    assert float(routing_loss(prediction, observation, "nse")) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("name", ["mse", "mae", "nse"])
def test_gradient_is_finite_with_missing_observations(name: str) -> None:
    prediction, observation = _pair()
    prediction.requires_grad_(True)
    routing_loss(prediction, observation, name).backward()
    assert torch.isfinite(prediction.grad).all()
    assert torch.all(prediction.grad[:, 2] == 0)  # gauge without observations excluded
    assert prediction.grad[0, 1] == 0  # missing day masked, not the whole gauge
    assert prediction.grad[1, 1] != 0 or prediction.grad[2, 1] != 0


def test_errors() -> None:
    prediction, observation = _pair()
    with pytest.raises(ValueError, match=r"prediction \(3, 3\) and observation \(3, 2\)"):
        routing_loss(prediction, observation[:, :2])
    with pytest.raises(ValueError, match="warmup"):
        routing_loss(prediction, observation, warmup=3)
    with pytest.raises(ValueError, match="unknown loss"):
        routing_loss(prediction, observation, "rmse")  # type: ignore[arg-type]
    with pytest.raises(NoValidObservationsError):
        routing_loss(prediction, torch.full_like(observation, NAN))
    with pytest.raises(NoValidObservationsError):
        routing_loss(prediction, observation, "nse", warmup=2)
