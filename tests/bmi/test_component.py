"""DdrRouting on the DRB demo: stepping equals one routing call, restarts, errors, grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bmi.helpers import CHECKPOINT, config_dict, write_config
from ddr_pipeline import simulation
from ddr_pipeline.bmi import DdrRouting, RestartError
from ddr_pipeline.bmi.variables import DISCHARGE, INFLOW, PARAMETERS, REACH_ID
from ddr_pipeline.config.training import ConfigError
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.model_store.checkpoints import load_checkpoint
from ddr_pipeline.project.datasets import XarrayZarrDataset
from ddr_pipeline.routing import muskingum_cunge, repeat_daily

START, END, DAYS = "1980-03-01", "1980-03-04", 4
HOURS = 24


@pytest.fixture(scope="module")
def inputs(drb_processed: Path) -> ModelInputs:
    return ModelInputs.from_dataset(
        XarrayZarrDataset(filepath=str(drb_processed / "model_inputs.zarr")).load()
    )


@pytest.fixture(scope="module")
def hourly_inflow(inputs: ModelInputs) -> np.ndarray:
    """``(DAYS*24, N)`` lateral inflow varying every hour (daily values × a diurnal cycle)."""
    first, _ = inputs.day_range(START, END)
    daily = inputs.lateral_inflow[first : first + DAYS]
    cycle = 1.0 + 0.5 * np.sin(2 * np.pi * np.arange(DAYS * HOURS) / HOURS)
    return (np.repeat(daily, HOURS, axis=0) * cycle[:, None]).astype(np.float32)


@pytest.fixture(scope="module")
def reference(inputs: ModelInputs, hourly_inflow: np.ndarray) -> dict:
    """One ``muskingum_cunge`` call over the period with the LSTM run over all days at once."""
    ckpt = load_checkpoint(CHECKPOINT)
    domain = simulation.reach_problem(inputs)
    features = simulation.FeatureIndex.from_names(
        ckpt.config, inputs.attribute_names, inputs.forcing_names
    )
    source = simulation.TrainedParameters(ckpt.model.eval(), features)
    settings = simulation.RoutingSettings.from_config(ckpt.config)
    first, _ = inputs.day_range(START, END)
    window = simulation.window_inputs(inputs, domain, first, first + DAYS)
    with torch.no_grad():
        params = source(window, None).physical
        hourly = {k: repeat_daily(v, HOURS) if v.ndim == 2 else v for k, v in params.items()}
        states = muskingum_cunge(
            domain.network,
            torch.from_numpy(hourly_inflow),
            channel=settings.channel({k: torch.from_numpy(v) for k, v in inputs.channel.items()}),
            params=hourly,
            **settings.engine_options(),
        )
    daily_names = [k for k, v in params.items() if v.ndim == 2]
    return {"states": states.numpy(), "params": params, "daily": daily_names}


def started(folder: Path, processed: Path, restart: Path | None = None, **sections) -> DdrRouting:
    """An initialized component over START..END (from the restart's time when one is given)."""
    config = config_dict(processed, START, END, **sections)
    if restart is not None:
        config["state"] = {**config.get("state", {}), "restart_file": str(restart)}
        del config["time"]["start"]
    component = DdrRouting()
    component.initialize(str(write_config(folder, config)))
    return component


def discharge(component: DdrRouting) -> np.ndarray:
    n = component.get_grid_size(0)
    return component.get_value(DISCHARGE.name, np.empty(n, dtype=np.float32))


def test_update_steps_equal_one_routing_call(
    tmp_path: Path, drb_processed: Path, hourly_inflow: np.ndarray, reference: dict
) -> None:
    component = started(tmp_path, drb_processed)
    assert component.get_end_time() == DAYS * HOURS * 3600.0
    routed = []
    for step, inflow in enumerate(hourly_inflow):
        component.set_value(INFLOW.name, inflow)
        component.update()
        assert component.get_current_time() == (step + 1) * 3600.0
        routed.append(discharge(component))
    np.testing.assert_allclose(np.stack(routed), reference["states"][1:], rtol=1e-6, atol=1e-6)
    assert component.get_current_time() == component.get_end_time()
    with pytest.raises(ValueError, match="end time"):
        component.update()


def test_update_until_holds_the_inflow_across_midnight(
    tmp_path: Path, drb_processed: Path, inputs: ModelInputs, reference: dict
) -> None:
    """One update_until over 30 h (crossing a day boundary) = 30 updates with that inflow."""
    inflow = inputs.lateral_inflow[inputs.day_range(START, END)[0]]
    stepped, jumped = started(tmp_path / "a", drb_processed), started(tmp_path / "b", drb_processed)
    for component in (stepped, jumped):
        component.set_value(INFLOW.name, inflow)
    for _ in range(30):
        stepped.update()
    jumped.update_until(30 * 3600.0)
    np.testing.assert_array_equal(discharge(jumped), discharge(stepped))
    jumped.update_until(30 * 3600.0)  # no-op
    assert jumped.get_current_time() == 30 * 3600.0


def test_daily_parameters_switch_at_midnight(
    tmp_path: Path, drb_processed: Path, hourly_inflow: np.ndarray, reference: dict
) -> None:
    assert reference["daily"], "the bundled model must predict daily parameters"
    component = started(tmp_path, drb_processed)
    seen = []
    for inflow in hourly_inflow[: HOURS + 1]:
        component.set_value(INFLOW.name, inflow)
        component.update()
        seen.append(
            {p: component.get_value_ptr(PARAMETERS[p].name).copy() for p in reference["daily"]}
        )
    for name in reference["daily"]:
        day0, day1 = reference["params"][name][0].numpy(), reference["params"][name][1].numpy()
        assert not np.allclose(day0, day1)
        np.testing.assert_allclose(seen[HOURS - 1][name], day0, rtol=1e-6)
        np.testing.assert_allclose(seen[HOURS][name], day1, rtol=1e-6)


def test_restart_mid_day_continues_exactly(
    tmp_path: Path, drb_processed: Path, hourly_inflow: np.ndarray
) -> None:
    restart = tmp_path / "state.nc"
    first = started(tmp_path / "a", drb_processed, state={"write_restart": str(restart)})
    for inflow in hourly_inflow[:30]:
        first.set_value(INFLOW.name, inflow)
        first.update()
    continuous = discharge(first)
    first.finalize()  # writes the restart at 30 h (06:00 of the second day)
    assert restart.is_file()

    resumed = started(tmp_path / "b", drb_processed, restart)
    assert resumed.get_start_datetime().isoformat() == "1980-03-02T06:00:00"
    np.testing.assert_array_equal(discharge(resumed), continuous)
    whole = started(tmp_path / "c", drb_processed)
    for inflow in hourly_inflow[:60]:
        whole.set_value(INFLOW.name, inflow)
        whole.update()
    for inflow in hourly_inflow[30:60]:
        resumed.set_value(INFLOW.name, inflow)
        resumed.update()
    np.testing.assert_array_equal(discharge(resumed), discharge(whole))


def test_restart_of_other_weights_or_reaches_is_refused(
    tmp_path: Path, drb_processed: Path
) -> None:
    component = started(tmp_path / "a", drb_processed)
    component.update()
    path = component.save_state(tmp_path / "state.nc")
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as stored:
        ds = stored.load()
    ds.attrs["model_fingerprint"] = "0123456789abcdef"
    ds.to_netcdf(tmp_path / "other_model.nc", engine="h5netcdf")
    ds.isel(reach_id=slice(1, None)).to_netcdf(tmp_path / "fewer.nc", engine="h5netcdf")
    with pytest.raises(RestartError, match="model 0123456789abcdef"):
        started(tmp_path / "b", drb_processed, tmp_path / "other_model.nc")
    first_id = int(ds["reach_id"].values[0])
    with pytest.raises(RestartError, match=str(first_id)):
        started(tmp_path / "c", drb_processed, tmp_path / "fewer.nc")


def test_bad_calls_fail_clearly_and_change_nothing(tmp_path: Path, drb_processed: Path) -> None:
    component = started(tmp_path, drb_processed)
    ids = component.get_value_ptr(REACH_ID.name)
    inflow = np.ones(ids.size, dtype=np.float32)
    inflow[3] = -1.0
    with pytest.raises(ValueError, match=str(ids[3])):
        component.set_value(INFLOW.name, inflow)
    with pytest.raises(ValueError, match="expected"):
        component.set_value(INFLOW.name, inflow[:-1])
    with pytest.raises(ValueError, match="output"):
        component.set_value(DISCHARGE.name, inflow)
    with pytest.raises(KeyError, match="unknown variable"):
        component.get_var_units("sea_water__temperature")
    component.set_value_at_indices(INFLOW.name, np.array([0, 5]), np.array([2.0, 3.0]))
    component.update_until(7200.0)
    with pytest.raises(ValueError, match="before the current time"):
        component.update_until(3600.0)
    with pytest.raises(ValueError, match="step grid"):
        component.update_until(9000.0)
    with pytest.raises(ValueError, match="end time"):
        component.update_until(component.get_end_time() + 3600.0)
    assert component.get_current_time() == 7200.0


def test_value_pointers(tmp_path: Path, drb_processed: Path) -> None:
    component = started(tmp_path, drb_processed)
    q = component.get_value_ptr(DISCHARGE.name)
    assert np.isnan(q).all()  # hot start pending: the first step starts from its own inflow
    with pytest.raises(ValueError, match="read-only"):
        q[0] = 1.0
    inflow = component.get_value_ptr(INFLOW.name)
    inflow[:] = 2.0  # a framework writes the inflow in place
    component.update()
    assert np.isfinite(q).all() and (q > 0).all()  # the same buffer, updated in place
    before = q.copy()
    component.update()
    assert not np.array_equal(before, q)


def test_grid_is_the_reach_network(tmp_path: Path, drb_processed: Path) -> None:
    component = started(tmp_path, drb_processed)
    n = component.get_grid_node_count(0)
    assert component.get_grid_type(0) == "unstructured" and component.get_grid_rank(0) == 2
    edges = component.get_grid_edge_nodes(
        0, np.empty(2 * component.get_grid_edge_count(0), np.int64)
    )
    assert n == 456 and edges.size // 2 == n - 6  # 6 outlets in the DRB demo
    x = component.get_grid_x(0, np.empty(n))
    y = component.get_grid_y(0, np.empty(n))
    assert np.isfinite(x).all() and (x > -77).all() and (x < -73).all() and (y > 38).all()


def test_configuration_errors_name_the_key(tmp_path: Path, drb_processed: Path) -> None:
    config = config_dict(drb_processed, START, END)
    config["time"]["dt"] = 7000.0
    with pytest.raises(ConfigError, match=r"bmi\.time\.dt"):
        DdrRouting().initialize(str(write_config(tmp_path, config)))
    config = config_dict(drb_processed, START, END, time={"stop": "1980-03-05"})
    with pytest.raises(ConfigError, match=r"bmi\.time\.stop"):
        DdrRouting().initialize(str(write_config(tmp_path, config)))
    config = config_dict(drb_processed, START, "1990-01-01")
    with pytest.raises(ValueError, match="after the inputs' last day"):
        DdrRouting().initialize(str(write_config(tmp_path, config)))
    with pytest.raises(RuntimeError, match="not initialized"):
        DdrRouting().update()


def test_bundled_checkpoint_is_small_and_weights_only() -> None:
    assert CHECKPOINT.stat().st_size < 300_000
    payload = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    assert {"model_state_dict", "config", "normalization_stats"} <= set(payload)


def test_target_reaches_route_their_upstream_closure(
    tmp_path: Path, drb_processed: Path, inputs: ModelInputs, hourly_inflow: np.ndarray
) -> None:
    """A sub-domain equals the whole network at its reaches (nothing flows in from outside)."""
    outlet = int(inputs.reach_ids[np.argmax(inputs.network.upstream_count)])
    whole = started(tmp_path / "a", drb_processed)
    part = started(tmp_path / "b", drb_processed, network={"target_reach_ids": [outlet]})
    ids = part.get_value_ptr(REACH_ID.name)
    assert 1 < ids.size < whole.get_grid_size(0) and outlet in ids
    columns = inputs.network.index_of(ids)
    for inflow in hourly_inflow[:30]:
        whole.set_value(INFLOW.name, inflow)
        part.set_value(INFLOW.name, inflow[columns])
        whole.update()
        part.update()
    np.testing.assert_allclose(discharge(part), discharge(whole)[columns], rtol=1e-6)


def test_loose_values_and_indices_are_refused(tmp_path: Path, drb_processed: Path) -> None:
    """Issue 26 finding 7: strings, complex numbers, (n, 1) and index -1 were accepted."""
    component = started(tmp_path, drb_processed)
    n = component.get_grid_size(0)
    before = component.get_value_ptr(INFLOW.name).copy()
    for bad, match in [
        (np.full(n, "1.0"), "real numbers"),
        (np.full(n, 1.0 + 2.0j), "real numbers"),
        (np.ones((n, 1)), rf"expected shape \({n},\)"),
    ]:
        with pytest.raises(ValueError, match=match):
            component.set_value(INFLOW.name, bad)
    with pytest.raises(ValueError, match=r"no negative indices.*-1"):
        component.set_value_at_indices(INFLOW.name, np.array([-1]), np.array([2.0]))
    with pytest.raises(ValueError, match=str(n)):
        component.set_value_at_indices(INFLOW.name, np.array([n]), np.array([2.0]))
    np.testing.assert_array_equal(component.get_value_ptr(INFLOW.name), before)
    with pytest.raises(ValueError, match="not finite.*end time"):
        component.update_until(float("inf"))
    assert component.get_current_time() == 0.0


def test_a_second_initialize_without_finalize_is_refused(
    tmp_path: Path, drb_processed: Path
) -> None:
    component = started(tmp_path, drb_processed)
    pointer = component.get_value_ptr(INFLOW.name)
    config = write_config(tmp_path / "again", config_dict(drb_processed, START, END))
    with pytest.raises(RuntimeError, match="already initialized: call finalize"):
        component.initialize(str(config))
    pointer[:] = 3.0  # the pointer still feeds the running component
    component.update()
    assert (component.get_value_ptr(INFLOW.name) == 3.0).all()
    component.finalize()
    component.initialize(str(config))


@pytest.mark.parametrize(
    ("variable", "value", "match"),
    [("lstm_h", np.nan, "LSTM state lstm_h is NaN or infinite"), ("discharge", 1e30, "above 1e")],
)
def test_a_restart_with_a_nan_lstm_state_or_absurd_discharge_is_refused(
    tmp_path: Path, drb_processed: Path, variable: str, value: float, match: str
) -> None:
    import xarray as xr

    component = started(tmp_path / "a", drb_processed)
    component.update()
    path = component.save_state(tmp_path / "state.nc")
    with xr.open_dataset(path, engine="h5netcdf") as stored:
        ds = stored.load()
    assert variable in ds
    ds[variable] = ds[variable].where(ds["reach_id"] != ds["reach_id"][0], value)
    bad = tmp_path / "bad.nc"
    ds.to_netcdf(bad, engine="h5netcdf")
    with pytest.raises(RestartError, match=f"restart file {bad}.*{match}"):
        started(tmp_path / "b", drb_processed, bad)
