"""The component's carried state and its restart file (one netCDF file, written atomically).

The state at a time ``t`` is everything the next step needs: the discharge of every reach at
``t`` (NaN everywhere = not started yet: the first step hot-starts from its own inflow) and the
LSTM state entering the day of the next step (the day's parameters are recomputed from it, so a
restart in the middle of a day continues exactly) and, for a model routing level-pool lakes, the
water elevation of every lake (``lake_elevation`` over ``lake_reach_id``, m). The file also records the time, the weights'
fingerprint and the reach ids, so a restart is only ever applied to the model and reaches it
belongs to.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ddr_pipeline.data.io import atomic_path
from ddr_pipeline.data.schema import format_values
from ddr_pipeline.models import LSTMState

FORMAT_VERSION = 1
#: Largest discharge (m3/s) a restart may hold: above any river's (the Amazon peaks near 3e5).
MAX_DISCHARGE = 1e6


class RestartError(ValueError):
    """A restart file that does not belong to this model, network or time."""


@dataclasses.dataclass(frozen=True)
class RoutingState:
    """Discharge ``(N,)`` (NaN = hot start pending), the LSTM state entering the next day, with
    assimilation the nudging state per gauged reach and, with lakes, their water elevation."""

    time: pd.Timestamp
    discharge: np.ndarray
    lstm: LSTMState | None
    fingerprint: str | None = None
    nudging: GaugeNudging | None = None
    lakes: LakeLevels | None = None


@dataclasses.dataclass(frozen=True)
class LakeLevels:
    """The water elevation ``(L,)`` (m, float64) of the lakes at the reaches ``reach_ids``."""

    reach_ids: np.ndarray
    elevation: np.ndarray


@dataclasses.dataclass(frozen=True)
class GaugeNudging:
    """The nudging state of the gauged reaches ``reach_ids`` (``(G,)`` arrays of
    ``routing.nudging.NudgingState``: last observation, its age in s, last correction)."""

    reach_ids: np.ndarray
    last_value: np.ndarray
    age: np.ndarray
    correction: np.ndarray

    def on(self, reach_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(last_value, age, correction) aligned on ``reach_ids`` (a gauge the file lacks: no
        observation yet)."""
        row = {int(r): k for k, r in enumerate(self.reach_ids)}
        pick = np.array([row.get(int(r), -1) for r in reach_ids], np.int64)
        have = pick >= 0

        def take(values: np.ndarray, fill: float) -> np.ndarray:
            return np.where(have, np.asarray(values, np.float64)[np.maximum(pick, 0)], fill)

        return take(self.last_value, np.nan), take(self.age, np.nan), take(self.correction, 0.0)


def write_restart(path: str | Path, state: RoutingState, reach_ids: np.ndarray, dt: float) -> Path:
    """Write ``state`` to ``path`` (netCDF, atomic: the old file or the complete new one)."""
    coords = {"reach_id": np.asarray(reach_ids, dtype=np.int64)}
    data = {
        "discharge": xr.DataArray(
            np.asarray(state.discharge, dtype=np.float32),
            dims="reach_id",
            attrs={"units": "m3 s-1", "long_name": "discharge at the reach outlet"},
        )
    }
    if state.lstm is not None:
        for name, tensor in zip(("lstm_h", "lstm_c"), state.lstm, strict=True):
            data[name] = xr.DataArray(
                tensor.detach().cpu().numpy(), dims=("layer", "reach_id", "hidden")
            )
    if state.nudging is not None:
        coords["gauge_reach_id"] = np.asarray(state.nudging.reach_ids, dtype=np.int64)
        for name, values, units in (
            ("nudging_last_value", state.nudging.last_value, "m3 s-1"),
            ("nudging_age", state.nudging.age, "s"),
            ("nudging_correction", state.nudging.correction, "m3 s-1"),
        ):
            data[name] = xr.DataArray(
                np.asarray(values, np.float64), dims="gauge_reach_id", attrs={"units": units}
            )
    if state.lakes is not None:
        coords["lake_reach_id"] = np.asarray(state.lakes.reach_ids, dtype=np.int64)
        data["lake_elevation"] = xr.DataArray(
            np.asarray(state.lakes.elevation, np.float64),
            dims="lake_reach_id",
            attrs={"units": "m", "long_name": "water surface elevation of the level-pool lake"},
        )
    attrs = {
        "format_version": FORMAT_VERSION,
        "time": state.time.isoformat(),
        "dt_seconds": float(dt),
        "model_fingerprint": state.fingerprint or "",
        "description": "ddr_pipeline BMI restart: discharge at `time` and the LSTM state "
        "entering the day of the next step",
    }
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    target = Path(path)
    with atomic_path(target) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return target


def read_restart(
    path: str | Path,
    reach_ids: np.ndarray,
    fingerprint: str,
    lake_reach_ids: np.ndarray | None = None,
) -> RoutingState:
    """Read a restart file and align it on ``reach_ids`` (and its lakes on ``lake_reach_ids``,
    the reaches of the model's lakes; None: the model routes no lakes).

    Raises :class:`RestartError` naming the reach ids missing from the file or a different
    model fingerprint (an LSTM state of other weights would silently corrupt the run), and the
    lake reach ids of lakes the file lacks, lakes the model does not route, or non-finite
    elevations. A file with ``discharge`` only is an initial state: the LSTM starts from zeros
    and the lakes (``lakes`` None) from the lakes table's initial elevation.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"restart file {source} does not exist")
    with xr.open_dataset(source, engine="h5netcdf") as stored:
        ds = stored.load()
    if "discharge" not in ds or "time" not in ds.attrs:
        raise RestartError(
            f"restart file {source} lacks the discharge variable or the time attribute"
        )
    file_ids = np.asarray(ds["reach_id"].values, dtype=np.int64)
    missing = np.setdiff1d(reach_ids, file_ids)
    if missing.size:
        raise RestartError(
            f"restart file {source} has no state for reach ids {format_values(missing)}"
        )
    nudging = None
    if "nudging_last_value" in ds:
        nudging = GaugeNudging(
            np.asarray(ds["gauge_reach_id"].values, np.int64),
            *(np.asarray(ds[f"nudging_{k}"].values) for k in ("last_value", "age", "correction")),
        )
        ds = ds.drop_dims("gauge_reach_id")
    lakes = _lake_levels(ds, lake_reach_ids, source)
    if "lake_reach_id" in ds.dims:
        ds = ds.drop_dims("lake_reach_id")
    ds = ds.sel(reach_id=np.asarray(reach_ids, dtype=np.int64))
    lstm = None
    if "lstm_h" in ds:
        saved = str(ds.attrs.get("model_fingerprint", ""))
        if saved != fingerprint:
            raise RestartError(
                f"restart file {source} holds the LSTM state of model {saved or '<unknown>'}, "
                f"this component runs model {fingerprint}"
            )
        lstm = tuple(_lstm_state(ds, name, reach_ids, source) for name in ("lstm_h", "lstm_c"))
    discharge = np.asarray(ds["discharge"].values, dtype=np.float32)
    _check_discharge(discharge, reach_ids, source)
    return RoutingState(
        time=pd.Timestamp(ds.attrs["time"]),
        discharge=discharge,
        lstm=lstm,  # type: ignore[arg-type]
        fingerprint=fingerprint,
        nudging=nudging,
        lakes=lakes,
    )


def _lake_levels(
    ds: xr.Dataset, lake_reach_ids: np.ndarray | None, source: Path
) -> LakeLevels | None:
    """The file's lake elevations aligned on ``lake_reach_ids``; None when the file has none."""
    if "lake_elevation" not in ds:
        return None
    file_ids = np.asarray(ds["lake_reach_id"].values, dtype=np.int64)
    wanted = np.zeros(0, np.int64) if lake_reach_ids is None else np.asarray(lake_reach_ids)
    unknown = np.setdiff1d(file_ids, wanted)
    if unknown.size:
        raise RestartError(
            f"restart file {source} holds lake levels at reach ids {format_values(unknown)}, "
            "where this model routes no lake (routing.lakes off, or the lakes table differs)"
        )
    missing = np.setdiff1d(wanted, file_ids)
    if missing.size:
        raise RestartError(
            f"restart file {source} has no lake level for the lakes at reach ids "
            f"{format_values(missing)}"
        )
    row = {int(r): k for k, r in enumerate(file_ids)}
    elevation = np.asarray(ds["lake_elevation"].values, np.float64)[[row[int(r)] for r in wanted]]
    bad = ~np.isfinite(elevation)
    if bad.any():
        raise RestartError(
            f"restart file {source}: lake_elevation is NaN or infinite at lake reach ids "
            f"{format_values(wanted[bad])}"
        )
    return LakeLevels(wanted.astype(np.int64), elevation)


def _lstm_state(ds: xr.Dataset, name: str, reach_ids: np.ndarray, source: Path) -> torch.Tensor:
    """The ``(layer, reach, hidden)`` LSTM state ``name``; :class:`RestartError` if not finite."""
    values = np.ascontiguousarray(ds[name].transpose("layer", "reach_id", "hidden").values)
    bad = ~np.isfinite(values).all(axis=(0, 2))
    if bad.any():
        raise RestartError(
            f"restart file {source}: the LSTM state {name} is NaN or infinite at reach ids "
            f"{format_values(np.asarray(reach_ids)[bad])}"
        )
    return torch.from_numpy(values)


def _check_discharge(discharge: np.ndarray, reach_ids: np.ndarray, source: Path) -> None:
    """All NaN (not started) or finite, >= 0 and at most :data:`MAX_DISCHARGE` everywhere."""
    nan = np.isnan(discharge)
    if nan.all():
        return
    bad = nan | ~np.isfinite(discharge) | (discharge < 0)
    if bad.any():
        raise RestartError(
            f"restart file {source}: discharge is missing, infinite or negative at reach ids "
            f"{format_values(reach_ids[bad])}"
        )
    absurd = discharge > MAX_DISCHARGE
    if absurd.any():
        raise RestartError(
            f"restart file {source}: discharge above {MAX_DISCHARGE:g} m3 s-1 (no river carries "
            f"that; max {float(discharge.max()):g}) at reach ids {format_values(reach_ids[absurd])}"
        )
