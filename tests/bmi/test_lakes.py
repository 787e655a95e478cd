"""DdrRouting with level-pool lakes: stepping equals one routing call, restarts carry the levels.

The synthetic network of the evaluation tests with one lake at reach 3 (reaches 1 and 2 drain
into it, it drains into 5) and a model that learns the lake's orifice area (tests/test_lakes_rollout.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from pipelines.evaluation import synthetic as syn
from test_lakes_rollout import LAKE_REACH_ID as LAKE_ID
from test_lakes_rollout import _lakes_table

from bmi.helpers import run_bmi_tester
from ddr_pipeline import simulation
from ddr_pipeline.bmi import DdrRouting, RestartError
from ddr_pipeline.bmi.variables import (
    DISCHARGE,
    INFLOW,
    LAKE_ELEVATION,
    LAKE_REACH_ID,
    OBSERVED,
)
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.data.model_inputs import lake_variables
from ddr_pipeline.model_store.checkpoints import load_checkpoint

STEPS = 30  # 24 steps of day 0 and 6 of day 1 (hourly)
DT = 3600.0


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model inputs with the lake, statistics, reaches and a checkpoint routing lakes."""
    folder = tmp_path_factory.mktemp("bmi_lakes")
    syn.model_inputs().assign(lake_variables(_lakes_table())).to_zarr(folder / "inputs.zarr")
    (folder / "stats.json").write_text(json.dumps({"attributes": {}, "forcings": {}}))
    syn.reaches_table().to_parquet(folder / "reaches.parquet")
    params = syn.training_params()
    params["routing"] = {"lakes": {"enabled": True}}
    params["kan"]["learnable_parameters"] = [*params["kan"]["learnable_parameters"], "orifice_area"]
    checkpoint = syn.write_checkpoint(folder / "models", params, final=False)
    return {"folder": folder, "checkpoint": checkpoint}


def started(
    files: dict[str, Path], folder: Path, assimilation: dict | None = None, **state: str
) -> DdrRouting:
    folder.mkdir(parents=True, exist_ok=True)
    base = files["folder"]
    config = {
        "model": {"checkpoint": str(files["checkpoint"])},
        "network": {
            "model_inputs": str(base / "inputs.zarr"),
            "normalization_stats": str(base / "stats.json"),
            "reaches": str(base / "reaches.parquet"),
        },
        "time": {"start": syn.START, "end": "1979-11-05", "dt": DT},
        "state": state,
        **({"assimilation": assimilation} if assimilation else {}),
    }
    if "restart_file" in state:
        del config["time"]["start"]
    (folder / "bmi.yaml").write_text(yaml.safe_dump(config))
    component = DdrRouting()
    component.initialize(str(folder / "bmi.yaml"))
    return component


def inflow_of(step: int) -> np.ndarray:
    """Lateral inflow of hourly step ``step``: the synthetic daily inflow times a diurnal cycle."""
    daily = syn.model_inputs()["lateral_inflow"].values[step // 24]
    return (daily * (1.0 + 0.5 * np.sin(2 * np.pi * step / 24))).astype(np.float32)


def read(component: DdrRouting, variable) -> np.ndarray:  # noqa: ANN001
    size = component.get_grid_size(component.get_var_grid(variable.name))
    return component.get_value(variable.name, np.empty(size, variable.dtype))


def run(component: DdrRouting, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps ``first..last-1`` one update each; (discharge, lake elevation) after each."""
    q, h = [], []
    for step in range(first, last):
        component.set_value(INFLOW.name, inflow_of(step))
        component.update()
        q.append(read(component, DISCHARGE))
        h.append(read(component, LAKE_ELEVATION))
    return np.array(q), np.array(h)


@pytest.fixture(scope="module")
def reference(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """``simulation.route_steps`` with the rollout's parameters and lakes, one call per step
    of the same inflow, the elevation carried; and one call of 24 steps of one inflow."""
    inputs = ModelInputs.from_dataset(xr.open_zarr(files["folder"] / "inputs.zarr").load())
    ckpt = load_checkpoint(files["checkpoint"])
    problem = simulation.reach_problem(inputs)
    features = simulation.FeatureIndex.from_names(
        ckpt.config, inputs.attribute_names, inputs.forcing_names
    )
    source = simulation.TrainedParameters(ckpt.model.eval(), features)
    settings = simulation.RoutingSettings.from_config(ckpt.config, dt=DT)
    window = simulation.window_inputs(inputs, problem, 0, 2)
    channel = {k: torch.from_numpy(v) for k, v in inputs.channel.items()}
    with torch.no_grad():
        physical = source(window, None).physical
    days = []
    for day in range(2):
        day_params = {k: v[day] if v.ndim == 2 else v for k, v in physical.items()}
        params, learned = simulation.split_lake_parameters(day_params)
        days.append((params, simulation.level_pool(problem.lakes, learned, settings)))
    assert "orifice_area" not in days[0][0] and days[0][1] is not None

    def route(step: int, steps: int, q0, h0, inflow):  # noqa: ANN001, ANN202
        params, lakes = days[step // 24]
        if h0 is not None:
            lakes = dataclasses.replace(lakes, elevation=h0)
        return simulation.route_steps(
            problem.network, torch.from_numpy(inflow), channel, params, settings,
            steps=steps, initial_state=q0, lakes=lakes,
        )  # fmt: skip

    q, h, q0, h0 = [], [], None, None
    with torch.no_grad():
        for step in range(STEPS):
            routed = route(step, 1, q0, h0, inflow_of(step))
            q0, h0 = routed.discharge[-1], routed.lake_elevation
            q.append(q0.numpy())
            h.append(h0.numpy())
        long = route(0, 24, None, None, inflow_of(0))
    return {
        "q": np.array(q),
        "h": np.array(h),
        "long_q": long.discharge[1:].numpy(),
        "long_h": long.lake_elevation.numpy(),
    }


def test_single_updates_equal_one_long_routing_call(
    files: dict[str, Path], reference: dict, tmp_path: Path
) -> None:
    """24 ``update`` calls of one held inflow == ``route_steps(steps=24)`` (bitwise), and
    ``update_until`` likewise."""
    component = started(files, tmp_path / "a")
    assert component.get_value(LAKE_REACH_ID.name, np.empty(1, np.int64)).tolist() == [LAKE_ID]
    np.testing.assert_array_equal(read(component, LAKE_ELEVATION), [104.0])  # the table's
    component.set_value(INFLOW.name, inflow_of(0))
    for step in range(24):
        component.update()
        np.testing.assert_array_equal(read(component, DISCHARGE), reference["long_q"][step])
    np.testing.assert_array_equal(read(component, LAKE_ELEVATION), reference["long_h"])
    component.finalize()
    until = started(files, tmp_path / "b")
    until.set_value(INFLOW.name, inflow_of(0))
    until.update_until(24 * DT)
    np.testing.assert_array_equal(read(until, DISCHARGE), reference["long_q"][-1])
    np.testing.assert_array_equal(read(until, LAKE_ELEVATION), reference["long_h"])
    until.finalize()
    lake = 2  # column of reach 3
    assert abs(float(reference["long_h"][0]) - 104.0) > 1e-3  # the lake level moved
    assert np.isfinite(reference["long_q"][:, lake]).all()


def test_updates_equal_route_steps_across_midnight(
    files: dict[str, Path], reference: dict, tmp_path: Path
) -> None:
    component = started(files, tmp_path)
    q, h = run(component, 0, STEPS)
    np.testing.assert_array_equal(q, reference["q"])
    np.testing.assert_array_equal(h[:, 0], reference["h"][:, 0])
    component.finalize()


def test_restart_in_the_middle_continues_exactly(
    files: dict[str, Path], reference: dict, tmp_path: Path
) -> None:
    restart = tmp_path / "state.nc"
    first = started(files, tmp_path / "a", write_restart=str(restart))
    run(first, 0, 20)
    first.finalize()
    with xr.open_dataset(restart, engine="h5netcdf") as ds:
        assert ds["lake_elevation"].dims == ("lake_reach_id",)
        assert ds["lake_elevation"].attrs["units"] == "m"
        assert ds["lake_reach_id"].values.tolist() == [LAKE_ID]
        assert ds["lake_elevation"].dtype == np.float64
    resumed = started(files, tmp_path / "b", restart_file=str(restart))
    assert resumed.get_current_time() == 0.0
    np.testing.assert_array_equal(read(resumed, LAKE_ELEVATION), reference["h"][19])
    q, h = run(resumed, 20, STEPS)
    np.testing.assert_array_equal(q, reference["q"][20:])
    np.testing.assert_array_equal(h[:, 0], reference["h"][20:, 0])
    resumed.finalize()


def _edited(source: Path, target: Path, edit) -> Path:  # noqa: ANN001
    with xr.open_dataset(source, engine="h5netcdf") as ds:
        edit(ds.load()).to_netcdf(target, engine="h5netcdf")
    return target


def test_bad_lake_levels_in_a_restart_are_refused(files: dict[str, Path], tmp_path: Path) -> None:
    restart = tmp_path / "state.nc"
    component = started(files, tmp_path / "a")
    run(component, 0, 3)
    component.save_state(restart)
    component.finalize()

    def unknown(ds: xr.Dataset) -> xr.Dataset:
        return ds.assign_coords(lake_reach_id=[5])

    def nan(ds: xr.Dataset) -> xr.Dataset:
        return ds.assign(lake_elevation=ds["lake_elevation"] * np.nan)

    def missing(ds: xr.Dataset) -> xr.Dataset:
        return ds.isel(lake_reach_id=[])

    cases = [
        (unknown, "lake levels at reach ids \\[5\\], where this model routes no lake"),
        (nan, f"lake_elevation is NaN or infinite at lake reach ids \\[{LAKE_ID}\\]"),
    ]
    for index, (edit, match) in enumerate(cases):
        bad = _edited(restart, tmp_path / f"bad{index}.nc", edit)
        with pytest.raises(RestartError, match=f"restart file {bad}.*{match}"):
            started(files, tmp_path / f"b{index}", restart_file=str(bad))
    bad = _edited(restart, tmp_path / "missing.nc", missing)
    with pytest.raises(
        RestartError, match=f"no lake level for the lakes at reach ids \\[{LAKE_ID}\\]"
    ):
        started(files, tmp_path / "c", restart_file=str(bad))


def test_a_restart_without_lake_levels_starts_them_from_the_table(
    files: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    restart = tmp_path / "state.nc"
    component = started(files, tmp_path / "a")
    run(component, 0, 3)
    component.save_state(restart)
    component.finalize()
    plain = _edited(
        restart, tmp_path / "plain.nc", lambda ds: ds.drop_vars(["lake_elevation", "lake_reach_id"])
    )
    with caplog.at_level(logging.WARNING, logger="ddr_pipeline.bmi.component"):
        resumed = started(files, tmp_path / "b", restart_file=str(plain))
    assert "has no lake levels" in caplog.text
    np.testing.assert_array_equal(read(resumed, LAKE_ELEVATION), [104.0])
    resumed.finalize()


def test_nudging_below_the_lake_leaves_it_alone_and_restarts_carry_both(
    files: dict[str, Path], reference: dict, tmp_path: Path
) -> None:
    """Assimilation at the outlet (reach 7, below the lake): the lake's level is that of the
    run without nudging (bitwise); the outlet is nudged; a restart holds both states."""
    da = {"enabled": True, "reach_ids": [7]}
    restart = tmp_path / "state.nc"
    component = started(files, tmp_path / "a", da, write_restart=str(restart))
    for step in range(STEPS):
        observed = np.full(7, np.nan, np.float32)
        observed[6] = 50.0
        component.set_value(OBSERVED.name, observed)
        component.set_value(INFLOW.name, inflow_of(step))
        component.update()
        np.testing.assert_array_equal(read(component, LAKE_ELEVATION), reference["h"][step])
    assert abs(float(read(component, DISCHARGE)[6]) - float(reference["q"][-1][6])) > 1e-3
    component.finalize()
    with xr.open_dataset(restart, engine="h5netcdf") as ds:
        assert {"lake_elevation", "nudging_last_value"} <= set(ds.data_vars)
    resumed = started(files, tmp_path / "b", da, restart_file=str(restart))
    np.testing.assert_array_equal(read(resumed, LAKE_ELEVATION), reference["h"][-1])
    resumed.finalize()


def test_the_lake_grid(files: dict[str, Path], tmp_path: Path) -> None:
    component = started(files, tmp_path)
    assert LAKE_ELEVATION.name in component.get_output_var_names()
    grid = component.get_var_grid(LAKE_ELEVATION.name)
    assert grid == 1 and component.get_var_grid(DISCHARGE.name) == 0
    assert component.get_var_units(LAKE_ELEVATION.name) == "m"
    assert component.get_var_nbytes(LAKE_ELEVATION.name) == 8
    assert component.get_grid_size(grid) == 1 and component.get_grid_edge_count(grid) == 0
    reaches = syn.reaches_table().set_index("id").geometry
    assert component.get_grid_x(grid, np.empty(1))[0] == reaches[LAKE_ID].x
    assert component.get_grid_y(grid, np.empty(1))[0] == reaches[LAKE_ID].y
    with pytest.raises(KeyError, match="grids 0 \\(reaches\\) and 1 \\(lakes\\) only"):
        component.get_grid_size(2)
    component.finalize()


def test_bmi_tester_passes_with_lakes(files: dict[str, Path], tmp_path: Path) -> None:
    """Both grids, the lake variables' units included."""
    import gimli.units  # noqa: F401  (bmi-tester skips its unit checks silently without it)

    stage = tmp_path / "stage"
    started(files, stage).finalize()  # writes stage/bmi.yaml
    run_bmi_tester(stage)
