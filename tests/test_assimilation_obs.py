"""Observations for data assimilation: NWM USGS time slices averaged onto routing steps with their
quality codes, daily series held over their steps, t-route's last-observation files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data.assimilation_obs import (
    daily_per_step,
    per_step,
    read_last_obs,
    read_usgs_timeslices,
    write_last_obs,
)

FIXTURE = Path(__file__).parent / "data" / "troute_lower_colorado"
SLICES = sorted(FIXTURE.glob("*.usgsTimeSlice.ncdf"))


def _raw(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    with xr.open_dataset(path) as ds:
        ids = [s.decode().strip() for s in ds["stationId"].values]
        return ids, ds["discharge"].values.astype(float), ds["discharge_quality"].values


def test_timeslices_to_half_hour_steps_with_quality() -> None:
    slices = read_usgs_timeslices(SLICES)
    assert len(SLICES) == 5 and slices.station.size == 5 * 65
    ids, _, quality = _raw(SLICES[0])
    stations = [ids[0], ids[1], *[s for s, q in zip(ids, quality, strict=True) if q < 100][:2]]
    start = pd.Timestamp("2021-08-22 23:30")
    obs = per_step(slices, stations, start, 1800.0, 4, min_quality=50)
    raw = [_raw(p)[1][[ids.index(s) for s in stations]] for p in SLICES]  # 00:00 ... 01:00
    np.testing.assert_allclose(obs[0, :2], raw[0][:2], rtol=1e-6)  # (23:30, 00:00]
    np.testing.assert_allclose(obs[1, :2], (raw[1][:2] + raw[2][:2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(obs[2, :2], (raw[3][:2] + raw[4][:2]) / 2, rtol=1e-6)
    assert np.isnan(obs[3]).all()  # (01:00, 01:30]: no slice
    assert np.isnan(obs[:, 2:]).all()  # quality code 0 < 50: rejected
    kept = per_step(slices, stations, start, 1800.0, 4, min_quality=0)
    assert np.isfinite(kept[:3, 2:]).all()


def test_daily_series_held_over_their_steps() -> None:
    daily = np.array([[1.0, np.nan], [2.0, 5.0]])
    out = daily_per_step(daily, 3)
    assert out.shape == (6, 2)
    assert np.array_equal(out[:3, 0], [1.0, 1.0, 1.0]) and np.isnan(out[:3, 1]).all()
    assert np.array_equal(out[3:, 1], [5.0, 5.0, 5.0])


def test_troute_last_obs_file_and_round_trip(tmp_path: Path) -> None:
    path = FIXTURE / "nudgingLastObs.2021-08-23_14:00:00.nc"
    last, age = read_last_obs(path, ["08117995", "08119500", "08123650", "99999999"])
    assert last[0] == pytest.approx(0.19368827) and age[0] == 0.0
    # 08119500's last observation (2021-10-12) lies after the model time: not usable
    assert np.isnan(last[1:]).all() and np.isnan(age[1:]).all()
    later = pd.Timestamp("2021-08-23 16:00")
    assert read_last_obs(path, ["08117995"], later)[1][0] == 7200.0
    stations = ["01", "02", "03"]
    value, seconds = np.array([3.5, np.nan, 0.25]), np.array([900.0, np.nan, 7200.0])
    out = write_last_obs(tmp_path / "nudgingLastObs.nc", stations, value, seconds, later)
    back_v, back_a = read_last_obs(out, stations[::-1])
    np.testing.assert_allclose(back_v, value[::-1])
    np.testing.assert_allclose(back_a, seconds[::-1])
