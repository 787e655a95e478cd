"""repeat_daily, daily_mean, gather_gauges."""

from __future__ import annotations

import pytest
import torch

from ddr_pipeline.routing import daily_mean, gather_gauges, repeat_daily


def test_repeat_daily_conserves_daily_volume() -> None:
    x = torch.arange(6.0).reshape(3, 2)
    h = repeat_daily(x, 24)
    assert h.shape == (72, 2)
    torch.testing.assert_close(h.reshape(3, 24, 2).sum(1), 24 * x)
    assert torch.equal(h[23], x[0]) and torch.equal(h[24], x[1])


def test_daily_mean_uses_end_of_step_states() -> None:
    q = torch.arange(49.0).reshape(49, 1)  # row 0 = initial state
    d = daily_mean(q, 24)
    torch.testing.assert_close(d, torch.tensor([[12.5], [36.5]]))
    with pytest.raises(ValueError, match="whole number of days"):
        daily_mean(q[:30], 24)


def test_gather_gauges_sums_and_differentiates() -> None:
    q = torch.rand(5, 4, dtype=torch.float64, requires_grad=True)
    out = gather_gauges(q, [[0], [1, 2], torch.tensor([3, 0])])
    expected = torch.stack([q[:, 0], q[:, 1] + q[:, 2], q[:, 3] + q[:, 0]], dim=1)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    torch.testing.assert_close(
        q.grad, torch.tensor([[2.0, 1.0, 1.0, 1.0]], dtype=torch.float64).expand(5, 4)
    )
    with pytest.raises(IndexError, match="out of range"):
        gather_gauges(q, [[7]])
    with pytest.raises(ValueError, match="no reaches"):
        gather_gauges(q, [[]])
