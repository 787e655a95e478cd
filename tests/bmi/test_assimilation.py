"""DdrRouting with streamflow assimilation: the observed-discharge input at gauged reaches, the
correction output, the nudging state through restart files, clear errors; off by default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bmi.helpers import config_dict, write_config
from ddr_pipeline.bmi import DdrRouting
from ddr_pipeline.bmi.variables import CORRECTION, DISCHARGE, INFLOW, OBSERVED, REACH_ID
from ddr_pipeline.config.training import ConfigError

START, END = "1980-03-01", "1980-03-02"


def _component(folder: Path, processed: Path, restart: Path | None = None, **da) -> DdrRouting:
    config = config_dict(processed, START, END)
    if da:
        config["assimilation"] = da
    if restart is not None:
        config["state"] = {"restart_file": str(restart)}
        del config["time"]["start"]
    component = DdrRouting()
    component.initialize(str(write_config(folder, config)))
    return component


def _gauges(processed: Path, tmp_path: Path) -> tuple[list[int], np.ndarray]:
    """Two reaches with upstream reaches (a headwater and the reach below it), as ids."""
    plain = _component(tmp_path / "ids", processed)
    ids = plain.get_value_ptr(REACH_ID.name).copy()
    plain.finalize()
    return [int(ids[3]), int(ids[10])], ids


def _run(component: DdrRouting, steps: int, observed: dict[int, float] | None = None):
    ids = component.get_value_ptr(REACH_ID.name)
    out = []
    for _ in range(steps):
        component.set_value(INFLOW.name, np.full(ids.size, 0.5, np.float32))
        if observed is not None:
            obs = np.full(ids.size, np.nan, np.float32)
            for rid, value in observed.items():
                obs[np.flatnonzero(ids == rid)] = value
            component.set_value(OBSERVED.name, obs)
        component.update()
        out.append(component.get_value_ptr(DISCHARGE.name).copy())
    return np.stack(out)


def test_observations_nudge_gauges_and_persist_through_restarts(
    tmp_path: Path, drb_processed: Path
) -> None:
    gauges, ids = _gauges(drb_processed, tmp_path)
    da = {"enabled": True, "reach_ids": gauges, "gain": 1.0, "decay_minutes": 180.0}
    off = _component(tmp_path / "off", drb_processed)
    assert OBSERVED.name not in off.get_input_var_names()  # off by default
    open_loop = _run(off, 8)
    restart = tmp_path / "state.nc"
    comp = _component(
        tmp_path / "on",
        drb_processed,
        **da,
    )
    assert comp.get_var_units(OBSERVED.name) == "m3 s-1"
    assert (
        OBSERVED.name in comp.get_input_var_names()
        and CORRECTION.name in comp.get_output_var_names()
    )
    g = int(np.flatnonzero(ids == gauges[0])[0])
    first = _run(comp, 3, {gauges[0]: 42.0})
    assert np.all(first[:, g] == 42.0)  # gain 1: the observation replaces the routed value
    assert np.isnan(comp.get_value_ptr(OBSERVED.name)).all()  # consumed by the update
    corr = comp.get_value_ptr(CORRECTION.name)[g]
    assert corr != 0.0 and 42.0 - corr > 0  # correction = 42 − the routed (positive) value
    comp.save_state(restart)
    after = _run(comp, 5)  # no observation: the correction decays (τ = 3 h)
    assert np.all(np.abs(after[:, g] - open_loop[3:, g]) > 0)
    assert abs(after[-1, g] - open_loop[-1, g]) < abs(after[0, g] - open_loop[3, g])
    resumed = _component(tmp_path / "resumed", drb_processed, restart, **da)
    np.testing.assert_array_equal(_run(resumed, 5), after)  # the nudging state was restored


def test_assimilation_errors_name_the_reach(tmp_path: Path, drb_processed: Path) -> None:
    gauges, ids = _gauges(drb_processed, tmp_path)
    comp = _component(tmp_path / "a", drb_processed, enabled=True, reach_ids=gauges)
    elsewhere = int(ids[0])
    obs = np.full(ids.size, np.nan, np.float32)
    obs[0] = 3.0
    with pytest.raises(
        ValueError, match=f"reach ids .*{elsewhere}.* not in assimilation.reach_ids"
    ):
        comp.set_value(OBSERVED.name, obs)
    obs[:] = np.nan
    obs[np.flatnonzero(ids == gauges[0])] = -1.0
    with pytest.raises(ValueError, match=f"finite and >= 0.*{gauges[0]}"):
        comp.set_value(OBSERVED.name, obs)
    with pytest.raises(ValueError, match=r"not in the routed network: \[123456789\]"):
        _component(tmp_path / "b", drb_processed, enabled=True, reach_ids=[123456789])
    with pytest.raises(ConfigError, match="needs assimilation.reach_ids"):
        _component(tmp_path / "c", drb_processed, enabled=True)
