"""Streamflow nudging in the engines: the rule on known series (gain, decay, missing
observations, quality flags), the same-step propagation downstream, the state carried across
calls, bitwise-unchanged routing when off, every backend and cut agreeing, gradients refused."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import torch
from reference import random_network
from routing_inputs import make_inputs

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import constants as K
from ddr_pipeline.routing import muskingum_cunge, muskingum_cunge_means
from ddr_pipeline.routing._nudge import nudge_value
from ddr_pipeline.routing.nudging import Nudging, NudgingState, apply_quality

DT = 3600.0
NAN = math.nan


def _rule(*args: float) -> tuple[float, float, float, float]:
    return nudge_value.py_func(*args)


def test_rule_gain_decay_missing_and_floor() -> None:
    # an observation: gain 1 replaces, gain 0.25 closes a quarter of the gap; it becomes the last
    assert _rule(10.0, 4.0, NAN, NAN, 3600.0, 1.0, 7200.0, 1e-4) == (4.0, -6.0, 4.0, 3600.0)
    assert _rule(10.0, 2.0, 5.0, 0.0, 7200.0, 0.25, 7200.0, 1e-4) == (8.0, -2.0, 2.0, 7200.0)
    # missing: toward the last observation with weight G·exp(-age/τ) (age 2 h, τ 2 h)
    q, c, lv, lt = _rule(10.0, NAN, 4.0, 0.0, 7200.0, 0.5, 7200.0, 1e-4)
    w = 0.5 * math.exp(-1.0)
    assert (lv, lt) == (4.0, 0.0)
    assert q == pytest.approx(10.0 + w * (4.0 - 10.0), rel=1e-15)
    assert c == pytest.approx(q - 10.0, rel=1e-15)
    # missing and never observed: untouched; τ = 0: no persistence
    q, c, lv, lt = _rule(10.0, NAN, NAN, NAN, 7200.0, 1.0, 7200.0, 1e-4)
    assert (q, c) == (10.0, 0.0) and math.isnan(lv) and math.isnan(lt)
    assert _rule(10.0, NAN, 4.0, 0.0, 7200.0, 1.0, 0.0, 1e-4)[:2] == (10.0, 0.0)
    # an observation of 0 is floored at Q_min like every state
    assert _rule(10.0, 0.0, NAN, NAN, 3600.0, 1.0, 7200.0, 1e-4)[0] == 1e-4


def test_quality_flags_reject_values() -> None:
    values = np.array([[5.0, -1.0, 3.0], [np.inf, 2.0, 7.0]])
    quality = np.array([[100, 100, 0], [100, 50, 100]])
    out = apply_quality(values, quality, min_quality=60)
    assert np.array_equal(np.isnan(out), [[False, True, True], [True, True, False]])
    assert out[0, 0] == 5.0 and out[1, 2] == 7.0


def _chain() -> tuple[RiverNetwork, torch.Tensor, dict, dict]:
    """Three reaches 1 -> 2 -> 3, hourly steps."""
    net = RiverNetwork.from_ids(np.array([1, 2, 3]), np.array([2, 3, 0]))
    qlat, channel, params = make_inputs(3, 12, seed=3)
    return net, qlat, channel, params


def test_known_series_at_a_gauge_and_downstream() -> None:
    net, qlat, channel, params = _chain()
    obs = np.full((12, 1), np.nan)
    obs[2, 0], obs[3, 0], obs[7, 0] = 9.0, 8.0, 6.5  # steps 0-1: never observed
    nud = Nudging(np.array([1]), obs, gain=1.0, decay_minutes=90.0)
    res = muskingum_cunge(net, qlat, channel, params, dt=DT, nudging=nud, return_diagnostics=True)
    base = muskingum_cunge(net, qlat, channel, params, dt=DT)
    q, corr = res.discharge.numpy(), res.assimilation.corrections[:, 0]
    assert np.array_equal(q[:3], base.numpy()[:3])  # nothing before the first observation
    assert (q[3, 1], q[4, 1], q[8, 1]) == (9.0, 8.0, 6.5)  # gain 1: the observation itself
    model = q[1:, 1] - corr
    for t, last, t_obs in [(4, 8.0, 3), (5, 8.0, 3), (6, 8.0, 3), (8, 6.5, 7), (11, 6.5, 7)]:
        w = math.exp(-(t - t_obs) * 60.0 / 90.0)
        assert q[t + 1, 1] == pytest.approx(model[t] + w * (last - model[t]), rel=1e-13)
    # the corrected flow reaches the downstream reach in the same step
    assert q[3, 2] != base[3, 2]
    st = res.assimilation.state
    assert st.last_value[0] == 6.5 and st.age[0] == (12 - 8) * DT
    assert st.correction[0] == corr[-1]


def test_off_is_bitwise_the_routing_without_nudging() -> None:
    net = random_network(40, seed=2)
    qlat, channel, params = make_inputs(40, 30, seed=4, clamps=True)
    base = muskingum_cunge(net, qlat, channel, params, dt=DT, return_diagnostics=True)
    gauges = np.array([0, 5, 17])
    for nud in (
        Nudging(gauges, np.full((30, 3), np.nan)),  # no observation at all
        Nudging(gauges, np.abs(np.random.default_rng(0).normal(5, 1, (30, 3))), gain=0.0),
    ):
        res = muskingum_cunge(net, qlat, channel, params, dt=DT, nudging=nud,
                              return_diagnostics=True)  # fmt: skip
        assert torch.equal(res.discharge, base.discharge)
        assert torch.equal(res.clamp_volume, base.clamp_volume)
        assert not np.any(res.assimilation.corrections)


def _case(n: int, t: int, seed: int):
    net = random_network(n, seed=seed)
    qlat, channel, params = make_inputs(n, t, seed=seed + 1, clamps=True)
    rng = np.random.default_rng(seed)
    gauges = rng.choice(n, size=max(3, n // 10), replace=False)
    obs = rng.uniform(0.5, 20.0, (t, gauges.size))
    obs[rng.random(obs.shape) < 0.6] = np.nan
    state = NudgingState(np.where(np.arange(gauges.size) % 2, 3.0, np.nan),
                         np.where(np.arange(gauges.size) % 2, 1800.0, np.nan),
                         np.zeros(gauges.size))  # fmt: skip
    return net, qlat, channel, params, Nudging(gauges, obs, 0.8, 240.0, state)


def test_torch_reference_agrees() -> None:
    net, qlat, channel, params, nud = _case(30, 20, 7)
    kw = {"dt": DT, "nudging": nud, "return_diagnostics": True, "leakance": True}
    a = muskingum_cunge(net, qlat, channel, params, backend="numba", **kw)
    b = muskingum_cunge(net, qlat, channel, params, backend="torch", **kw)
    torch.testing.assert_close(a.discharge, b.discharge, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(a.assimilation.corrections, b.assimilation.corrections,
                               rtol=1e-10, atol=1e-10)  # fmt: skip
    np.testing.assert_allclose(a.assimilation.state.age, b.assimilation.state.age)
    assert np.any(a.assimilation.corrections != 0)


def test_parallel_cut_is_bitwise_the_serial_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(K, "CPU_BLOCK_MIN_REACHES", 10)
    monkeypatch.setattr(K, "PARALLEL_MIN_REACHES", 20)
    monkeypatch.setattr(K, "CPU_CHUNK_STEPS", 5)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 4)
    net, qlat, channel, params, nud = _case(200, 24, 9)
    qlat = qlat[::6].contiguous()
    runs = [
        muskingum_cunge_means(net, qlat, channel, params, np.arange(0, 200, 7), dt=DT,
                              substeps=6, nudging=nud, threads=n)
        for n in (1, 3)
    ]  # fmt: skip
    assert torch.equal(runs[0].means, runs[1].means)
    assert np.array_equal(runs[0].assimilation.corrections, runs[1].assimilation.corrections)


def test_state_carries_across_calls() -> None:
    net, qlat, channel, params, nud = _case(30, 20, 12)
    kw = {"dt": DT, "return_diagnostics": True}
    whole = muskingum_cunge(net, qlat, channel, params, nudging=nud, **kw)
    first = muskingum_cunge(net, qlat[:11], channel, params,
                            nudging=Nudging(nud.reaches, nud.observations[:11], nud.gain,
                                            nud.decay_minutes, nud.state), **kw)  # fmt: skip
    second = muskingum_cunge(net, qlat[11:], channel, params, initial_state=first.discharge[-1],
                             nudging=Nudging(nud.reaches, nud.observations[11:], nud.gain,
                                             nud.decay_minutes, first.assimilation.state),
                             **kw)  # fmt: skip
    joined = torch.cat([first.discharge, second.discharge[1:]])
    torch.testing.assert_close(joined, whole.discharge, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(second.assimilation.state.last_value,
                               whole.assimilation.state.last_value)  # fmt: skip
    np.testing.assert_allclose(second.assimilation.state.age, whole.assimilation.state.age)


def test_gradients_are_refused_and_inputs_checked() -> None:
    net, qlat, channel, params = _chain()
    nud = Nudging(np.array([1]), np.full((12, 1), 3.0))
    with pytest.raises(RuntimeError, match=r"forward only.*\['n'\]"):
        muskingum_cunge(net, qlat, channel, {**params, "n": params["n"].requires_grad_()},
                        nudging=nud)  # fmt: skip
    params["n"] = params["n"].detach()
    with torch.no_grad():
        muskingum_cunge(net, qlat, channel, params, nudging=nud)
    with pytest.raises(ValueError, match="reach 2 .* more than one gauge"):
        muskingum_cunge(net, qlat, channel, params, nudging=Nudging(np.array([1, 1]),
                                                                    np.ones((12, 2))))  # fmt: skip
    with pytest.raises(ValueError, match="observation of reach 3 at step 4 is -1.0"):
        bad = np.ones((12, 1))
        bad[4] = -1.0
        muskingum_cunge(net, qlat, channel, params, nudging=Nudging(np.array([2]), bad))
    with pytest.raises(ValueError, match=r"must be \(T, G\) = \(12, 1\)"):
        muskingum_cunge(net, qlat, channel, params, nudging=Nudging(np.array([2]), np.ones((3, 1))))
