"""DailyParameterLSTM: shapes, bounds, state carry, input checks, side-effect-free construction."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ddr_pipeline.models import DailyParameterLSTM
from ddr_pipeline.models.grouping import group_reaches


def _lstm(**kwargs) -> DailyParameterLSTM:
    return DailyParameterLSTM(3, 2, ["n", "d_gw"], hidden_size=8, num_layers=2, **kwargs)


def test_shapes_and_bounds() -> None:
    out, (h, c) = _lstm()(torch.randn(12, 5, 3), torch.randn(5, 2))
    assert set(out) == {"n", "d_gw"}
    for values in out.values():
        assert values.shape == (12, 5)
        assert bool(((values > 0) & (values < 1)).all())
    assert h.shape == c.shape == (2, 5, 8)


@pytest.mark.parametrize("groups", [None, 2])
def test_state_carry_matches_one_long_sequence(groups) -> None:
    model = _lstm(dropout=0.5, sequence_groups=groups).eval()
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


def test_sequence_groups_none_and_n_reaches_match_per_reach_outputs() -> None:
    forcings, attributes = torch.randn(9, 6, 3), torch.randn(6, 2)
    expected, (h, c) = _lstm().eval()(forcings, attributes)
    for groups in (None, 6, 50):
        out, (h2, c2) = _lstm(sequence_groups=groups).eval()(forcings, attributes)
        for name in expected:
            assert torch.equal(out[name], expected[name])
        assert torch.equal(h2, h) and torch.equal(c2, c)


def test_grouped_run_of_duplicated_reaches_equals_per_reach_run() -> None:
    """Pairs of reaches with equal inputs: three groups must give the per-reach values."""
    forcings, attributes = torch.randn(9, 3, 3), torch.randn(3, 2)
    order = torch.tensor([0, 1, 0, 2, 1, 2])
    model = _lstm().eval()
    expected, (h, _) = model(forcings, attributes)
    model.sequence_groups = 3
    out, (h2, _) = model(forcings[:, order], attributes[order])
    for name in expected:
        assert torch.allclose(out[name], expected[name][:, order], atol=1e-6)
    assert torch.allclose(h2, h[:, order], atol=1e-6)


def test_groups_share_parameters_and_gradients_flow() -> None:
    generator = torch.Generator().manual_seed(3)
    forcings, attributes = torch.randn(8, 40, 3, generator=generator), torch.randn(40, 2)
    model = _lstm(sequence_groups=4, dropout=0.0)
    out, _ = model(forcings, attributes)
    labels = group_reaches(attributes, 4, seed=model.grouping_seed)
    assert 1 < int(labels.max()) + 1 <= 4
    for group in labels.unique():
        members = out["n"][:, labels == group]
        assert torch.equal(members, members[:, :1].expand_as(members))
    out["n"].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.lstm.parameters())
    again, _ = _lstm(sequence_groups=4, dropout=0.0)(forcings, attributes)
    assert torch.equal(again["n"], out["n"].detach())


def test_grouping_is_deterministic_and_bounded() -> None:
    features = torch.randn(500, 4, generator=torch.Generator().manual_seed(1))
    labels = group_reaches(features, 16, seed=7)
    assert torch.equal(labels, group_reaches(features.clone(), 16, seed=7))
    assert labels.min() == 0 and int(labels.max()) < 16
    assert torch.equal(labels[:1], torch.tensor([0]))  # numbered by first appearance
    assert torch.equal(group_reaches(torch.zeros(5, 2), 3), torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("groups", [0, -2, True, 1.5])
def test_bad_sequence_groups_rejected(groups) -> None:
    with pytest.raises(ValueError, match="sequence_groups"):
        _lstm(sequence_groups=groups)
    with pytest.raises(ValueError, match="sequence_groups"):
        DailyParameterLSTM(3, 0, ["n"], sequence_groups=4)
