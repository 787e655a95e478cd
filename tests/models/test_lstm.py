"""DailyParameterLSTM: shapes, bounds, state carry, input checks, side-effect-free construction."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ddr_pipeline.models import DailyParameterLSTM


def _lstm(**kwargs) -> DailyParameterLSTM:
    return DailyParameterLSTM(3, 2, ["n", "d_gw"], hidden_size=8, num_layers=2, **kwargs)


def test_shapes_and_bounds() -> None:
    out, (h, c) = _lstm()(torch.randn(12, 5, 3), torch.randn(5, 2))
    assert set(out) == {"n", "d_gw"}
    for values in out.values():
        assert values.shape == (12, 5)
        assert bool(((values > 0) & (values < 1)).all())
    assert h.shape == c.shape == (2, 5, 8)


def test_state_carry_matches_one_long_sequence() -> None:
    model = _lstm(dropout=0.5).eval()
    forcings, attributes = torch.randn(10, 4, 3), torch.randn(4, 2)
    full, _ = model(forcings, attributes)
    first, state = model(forcings[:6], attributes)
    second, _ = model(forcings[6:], attributes, state)
    for name in full:
        assert torch.allclose(torch.cat([first[name], second[name]]), full[name], atol=1e-6)
    fresh, _ = model(forcings[6:], attributes)
    assert not torch.allclose(fresh["n"], full["n"][6:])


def test_construction_deterministic_and_global_rng_untouched() -> None:
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    a, b = _lstm(seed=1), _lstm(seed=1)
    assert torch.equal(torch.rand(2), expected)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_gradients_flow() -> None:
    model = _lstm()
    out, _ = model(torch.randn(6, 3, 3), torch.randn(3, 2))
    (out["n"].sum() + out["d_gw"].sum()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name


@pytest.mark.parametrize(
    ("forcings", "attributes", "match"),
    [((6, 3, 2), (3, 2), "forcings must have shape"), ((6, 3, 3), (4, 2), "attributes must")],
)
def test_bad_shapes(forcings, attributes, match) -> None:
    with pytest.raises(ValueError, match=match):
        _lstm()(torch.randn(*forcings), torch.randn(*attributes))


def test_cudnn_limit_splits_a_continental_batch() -> None:
    """cuDNN's 32-bit gate indexing: one year of 50,000 reaches (hidden 64) must be split."""
    model = DailyParameterLSTM(3, 2, ["n"], hidden_size=64)
    year = SimpleNamespace(is_cuda=True, shape=(365, 50_000, 3))
    limit = model._library_limit(year)
    assert limit < 50_000 and limit * 365 * 4 * 64 <= 2**30
    assert model._library_limit(torch.zeros(365, 50_000, 3)) is None  # CPU: one call


def test_split_sequences_match_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _lstm(dropout=0.0)
    forcings, attributes = torch.randn(7, 10, 3), torch.randn(10, 2)
    whole, (h, c) = model(forcings, attributes)
    grads = torch.autograd.grad(whole["n"].sum(), list(model.parameters()))
    monkeypatch.setattr(DailyParameterLSTM, "_library_limit", lambda self, f: 3)
    for chunk in (None, 4):  # the library's split alone, and within memory chunks
        split, (hs, cs) = model(forcings, attributes, chunk_reaches=chunk)
        torch.testing.assert_close(split["n"], whole["n"], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close((hs, cs), (h, c), rtol=1e-6, atol=1e-7)
        split_grads = torch.autograd.grad(split["n"].sum(), list(model.parameters()))
        torch.testing.assert_close(split_grads, grads, rtol=1e-5, atol=1e-6)
