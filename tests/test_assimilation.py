"""Streamflow data assimilation on the simulation path, in domain routing and its evaluation:
observations cut per window, state carried over chunks, gain-1 gauges on their observations,
forecasts without observations, leave-gauges-out split, configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pipelines.evaluation import synthetic as syn
from pydantic import ValidationError

from ddr_pipeline import simulation
from ddr_pipeline.config.assimilation import AssimilationConfig
from ddr_pipeline.config.model_source import ModelSource
from ddr_pipeline.data.assimilation_obs import read_last_obs
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.experiments.assimilation import (
    Split,
    Study,
    forecasts,
    leave_gauges_out,
    split_gauges,
    upstream_gauges,
)
from ddr_pipeline.inference.assimilation import lead_skill
from ddr_pipeline.inference.gauges import PredictionSettings, trained_source
from ddr_pipeline.inference.reaches import route_reaches
from ddr_pipeline.model_store.loader import load_model


def test_window_holds_daily_rows_and_cuts_the_forecast() -> None:
    obs = np.array([[1.0, 10.0], [2.0, np.nan], [3.0, 30.0]])
    da = simulation.GaugeAssimilation(np.array([0, 4]), obs, steps_per_row=4)
    nud = da.window(1, 3, 4, None)
    assert nud.observations.shape == (8, 2)
    assert (
        np.array_equal(nud.observations[:4, 0], [2.0] * 4)
        and np.isnan(nud.observations[:4, 1]).all()
    )
    cut = da.forecast_from(9).window(1, 3, 4, None).observations  # steps 9.. of days 1-2
    assert np.array_equal(cut[:5, 0], [2.0, 2.0, 2.0, 2.0, 3.0]) and np.isnan(cut[5:]).all()
    with pytest.raises(ValueError, match="cover 12 steps, the window needs up to step 16"):
        da.window(2, 4, 4, None)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("da")
    ckpt = load_model(ModelSource(checkpoint=str(syn.write_checkpoint(tmp)), run_name="r",
                                  models_dir=str(tmp)))  # fmt: skip
    inputs = ModelInputs.from_dataset(syn.model_inputs())
    gauges = GaugeSet.from_table(syn.gauges_table(), inputs, split=None)
    single = [g for g, r in enumerate(gauges.reach_index) if len(r) == 1]
    problem = simulation.gauge_problem(inputs, [gauges.reach_index[g] for g in single])
    settings = simulation.RoutingSettings.from_config(ckpt.config)
    obs = inputs.observations[:, gauges.obs_column[single]].astype(np.float64)
    local = np.array([int(problem.outputs[k][0]) for k in range(len(single))])
    return ckpt, inputs, problem, settings, obs, local


def _roll(study, da, chunk_days: int = 91, stop: int = 60):
    ckpt, inputs, problem, settings, _, _ = study
    return simulation.rollout(inputs, problem, trained_source(ckpt, inputs), settings, 0, stop,
                              chunk_days=chunk_days, assimilation=da)  # fmt: skip


def test_rollout_nudges_gauges_onto_observations_and_carries_state(study) -> None:
    _, _, _, settings, obs, local = study
    spd = settings.steps_per_day
    open_loop = _roll(study, None)
    none = _roll(study, simulation.GaugeAssimilation(local, np.full_like(obs, np.nan), spd))
    assert np.array_equal(none.daily, open_loop.daily)  # nothing observed: bitwise the open loop
    da = simulation.GaugeAssimilation(local, obs, spd, gain=1.0, decay_minutes=600.0)
    whole, chunked = _roll(study, da), _roll(study, da, chunk_days=7)
    valid = np.isfinite(obs[:60])
    # gain 1 and the day's mean held over its steps: an observed gauge's daily mean is the obs
    np.testing.assert_allclose(whole.daily[valid], obs[:60][valid], rtol=1e-5)
    assert not np.allclose(whole.daily, open_loop.daily)
    np.testing.assert_allclose(chunked.daily, whole.daily, rtol=1e-5)
    np.testing.assert_allclose(chunked.assimilation.daily_correction,
                               whole.assimilation.daily_correction, rtol=1e-4, atol=1e-6)  # fmt: skip
    # forecast from day 40: no observation after it, the correction decays (τ = 10 h)
    fc = _roll(study, da.forecast_from(40 * spd))
    np.testing.assert_array_equal(fc.daily[:40], whole.daily[:40])
    corr = np.abs(fc.assimilation.daily_correction)
    assert np.all(corr[45:] < 1e-6 + 1e-3 * corr[:40].max())


def test_domain_routing_with_assimilation_and_forecast(study, tmp_path: Path) -> None:
    ckpt, inputs, *_ = study
    settings = PredictionSettings(warmup_days=5, chunk_days=7)
    period = ("1979-12-10", "1980-01-10")
    out = tmp_path / "nudgingLastObs.nc"
    config = AssimilationConfig(enabled=True, gauges=["01000003"], decay_minutes=240.0,
                                assimilate_until="1979-12-31", last_obs_out=str(out))  # fmt: skip
    ds = route_reaches(ckpt, inputs, period, settings, None, "r", (config, syn.gauges_table()))
    plain = route_reaches(ckpt, inputs, period, settings, None, "r")
    assert list(ds["assimilation_correction"].gage_id.values) == ["01000003"]
    assert ds["forecast_median_abs_rel_error"].sizes["lead_day"] == 11  # Dec 31 .. Jan 10
    assert not np.allclose(ds["discharge"], plain["discharge"])
    last, age = read_last_obs(out, ["01000003"])
    col = inputs.gauge_columns(["01000003"])[0]
    series = inputs.observations[: inputs.dates.get_loc(pd.Timestamp("1979-12-31")), col]
    day = np.flatnonzero(np.isfinite(series))[-1]  # the last observed day before the cut
    assert last[0] == pytest.approx(series[day], rel=1e-6)
    end = pd.Timestamp("1980-01-11")  # the end of the last routed step
    assert age[0] == (end - inputs.dates[day + 1]).total_seconds()
    with pytest.raises(ValueError, match="not on one reach of the routed domain|not in the gauge"):
        bad = AssimilationConfig(enabled=True, gauges=["99999999"])
        route_reaches(ckpt, inputs, period, settings, None, "r", (bad, syn.gauges_table()))


def test_lead_skill_and_gauge_split() -> None:
    dates = pd.date_range("2000-01-01", periods=4)
    sim = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 5.0], [4.0, np.nan]])
    obs = np.array([[1.0, 2.0], [1.0, 4.0], [3.0, 4.0], [4.0, 1.0]])
    skill = lead_skill(sim, obs, dates, pd.Timestamp("2000-01-02 00:00"))
    assert skill["lead_day"].tolist() == [1, 2, 3]
    assert skill["median_abs_rel_error"].tolist() == [0.75, 0.125, 0.0]
    assert skill["n_gauges"].tolist() == [2, 2, 1]
    upstream = [np.array([], np.int64), np.array([0]), np.array([0, 1]), np.array([], np.int64)]
    split = split_gauges(upstream, 0.5, seed=3)
    assert split.assimilated.size == 2
    for g in split.scored:  # never an assimilated gauge, always one assimilated upstream
        assert g not in split.assimilated and np.isin(upstream[g], split.assimilated).any()


def test_config_is_off_by_default_and_strict() -> None:
    assert AssimilationConfig().enabled is False
    with pytest.raises(ValidationError, match="enabled is false"):
        AssimilationConfig(gauges=["01000003"])
    with pytest.raises(ValidationError, match="gain"):
        AssimilationConfig(enabled=True, gain=1.5)


def test_evaluation_study_on_the_synthetic_basin(study) -> None:
    """The experiment's pieces: upstream gauges, leave-gauges-out scores of held-out gauges only,
    forecasts equal to the assimilated run up to the issue time and free of observations after."""
    ckpt, inputs, *_ = study
    gauges = GaugeSet.from_table(syn.gauges_table(), inputs, split=None)
    st = Study.build(ckpt, inputs, gauges)
    upstream = upstream_gauges(inputs, st.gauges)
    assimilated = np.array([g for g in range(len(st.gauges)) if upstream[g].size == 0])
    scored = np.array([g for g in range(len(st.gauges)) if np.isin(upstream[g], assimilated).any()])
    assert scored.size > 0
    split = Split(assimilated, scored)
    table = leave_gauges_out(st, split, (61, 91), 1.0, 120.0)
    assert table["STAID"].tolist() == [st.gauges.staids[g] for g in scored]
    assert (table["nse_assimilated"] != table["nse_open_loop"]).any()
    fc = forecasts(st, split, np.array([70, 80]), 3, gain=1.0, decay=120.0)
    da = st.rollout(0, 91, st.assimilation(assimilated, 1.0, 120.0))
    assert fc.shape == (2, 3, len(st.gauges))
    assert not np.allclose(fc[0, :, assimilated], da[70:73][:, assimilated].T)  # no obs after


def _timeslice(folder: Path, when: pd.Timestamp, station: str, value: float, quality: int) -> None:
    """One NWM-format usgsTimeSlice file with one station record."""
    stamp = when.strftime("%Y-%m-%d_%H:%M:%S")
    ds = xr.Dataset({
        "stationId": ("stationIdInd", np.array([station.rjust(15)], dtype="S15")),
        "time": ("stationIdInd", np.array([stamp], dtype="S19")),
        "discharge": ("stationIdInd", np.array([value], np.float32)),
        "discharge_quality": ("stationIdInd", np.array([quality], np.int16)),
    }, attrs={"sliceCenterTimeUTC": stamp, "sliceTimeResolutionMinutes": "15"})  # fmt: skip
    ds.to_netcdf(folder / f"{stamp}.15min.usgsTimeSlice.ncdf")


def test_domain_routing_assimilates_usgs_timeslices(study, tmp_path: Path) -> None:
    """Time slices on the routing steps: a good record nudges its hour, a quality-0 one is dropped."""
    ckpt, inputs, *_ = study
    settings = PredictionSettings(warmup_days=0, chunk_days=7)
    period = ("1979-12-10", "1979-12-20")
    _timeslice(tmp_path, pd.Timestamp("1979-12-15 06:00"), "01000003", 99.0, 100)
    _timeslice(tmp_path, pd.Timestamp("1979-12-17 06:00"), "01000003", 5000.0, 0)  # rejected
    config = AssimilationConfig(enabled=True, gauges=["01000003"], decay_minutes=60.0,
                                usgs_timeslices=str(tmp_path / "*.usgsTimeSlice.ncdf"),
                                min_quality=50)  # fmt: skip
    ds = route_reaches(ckpt, inputs, period, settings, None, "r", (config, syn.gauges_table()))
    corr = ds["assimilation_correction"].sel(gage_id="01000003").to_series()
    assert (corr[:"1979-12-14"] == 0).all() and corr["1979-12-15"] > 0
    assert abs(corr["1979-12-17"]) < 1e-3 * corr["1979-12-15"]  # nothing from the bad record
