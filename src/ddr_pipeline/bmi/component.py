"""``DdrRouting``: the trained router as a BMI 2.0 component (a drop-in NextGen routing module).

A framework sets the lateral inflow of every reach (m³/s) for the next step, calls ``update``
(one routing step of ``dt`` seconds) or ``update_until`` (the inflow held for every step up to
that time), and reads the discharge. The component carries the routing state (discharge of every
reach) and the LSTM state between calls: the daily parameters of input day ``d`` come from one
LSTM day continuing the state of day ``d - 1`` and switch at midnight, so N ``update`` calls give
the discharge of one Muskingum–Cunge run over the same steps (docs/bmi.md).

Model time is in seconds since ``time.start``. The learned parameters are read-only outputs:
those of the last step taken (before the first ``update``: of the first step). A model trained
with ``routing.lakes`` routes the level-pool lakes of the network exactly as the routing
pipeline does and carries their water elevation (an output on grid 1, the lakes) from step to
step and through restart files.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import torch
from bmipy import Bmi

from ddr_pipeline.bmi.config import BmiConfig, load_bmi_config
from ddr_pipeline.bmi.model import TrainedRouter
from ddr_pipeline.bmi.state import (
    GaugeNudging,
    LakeLevels,
    RoutingState,
    read_restart,
    write_restart,
)
from ddr_pipeline.bmi.variables import (
    CORRECTION,
    DISCHARGE,
    INFLOW,
    LAKE_ELEVATION,
    LAKE_GRID,
    LAKE_REACH_ID,
    OBSERVED,
    PARAMETERS,
    REACH_GRID,
    REACH_ID,
    ROUTING_PARAMETERS,
    Variable,
)
from ddr_pipeline.data.geometry import reach_points
from ddr_pipeline.data.schema import format_values
from ddr_pipeline.models import LSTMState
from ddr_pipeline.simulation import LevelPool, Nudging, NudgingState, RoutedSteps
from ddr_pipeline.simulation.settings import SECONDS_PER_DAY, steps_per_day

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Progress:
    """Where the run stands; replaced as a whole so a failed update changes nothing."""

    step: int  # steps taken since model time 0
    discharge: torch.Tensor | None  # (N,) at the current time; None = hot start pending
    day: int  # input day whose parameters are loaded
    lstm_entering: LSTMState | None  # LSTM state entering `day`
    lstm_after: LSTMState | None  # ... and after it
    params: dict[str, torch.Tensor]  # (N,) channel parameters of `day`
    nudging: NudgingState | None = None  # per gauged reach (assimilation on)
    lakes: LevelPool | None = None  # the lakes with `day`'s parameters (elevation: see below)
    lake_elevation: torch.Tensor | None = None  # (L,) float64 at the current time (m)


@dataclasses.dataclass(frozen=True)
class _Clock:
    """Model time on the step grid: step k starts ``t0 + k`` steps after the inputs' first day."""

    dt: float
    t0: int  # steps from 00:00 of the inputs' first day to model time 0
    n_steps: int  # steps from model time 0 to the end time

    @property
    def steps_per_day(self) -> int:
        return steps_per_day(self.dt)

    def day_of(self, step: int) -> int:
        """Input day of step ``step``."""
        return (self.t0 + step) // self.steps_per_day

    def steps_left_in_day(self, step: int) -> int:
        """Steps from ``step`` to the next midnight."""
        return self.steps_per_day - (self.t0 + step) % self.steps_per_day


def _real_vector(name: str, src: np.ndarray, size: int) -> np.ndarray:
    """``src`` as ``(size,)`` float64: integer or floating values of exactly that 1-D shape.

    Strings, booleans, complex numbers (whose imaginary part would be dropped) and shapes such
    as ``(size, 1)`` are refused with a ``ValueError`` naming the variable.
    """
    array = np.asarray(src)
    if array.dtype.kind not in "iuf":
        raise ValueError(
            f"{name}: values must be real numbers (integer or float), got dtype {array.dtype}"
        )
    if array.shape != (size,):
        raise ValueError(f"{name}: expected shape ({size},), got {array.shape}")
    return array.astype(np.float64)


class DdrRouting(Bmi):
    """BMI 2.0 component routing lateral inflow with a trained ``ddr_pipeline`` model."""

    _NAME = "ddr_pipeline DdrRouting: trained KAN/LSTM Muskingum-Cunge river routing"

    def __init__(self) -> None:
        self._config: BmiConfig | None = None
        self._router: TrainedRouter | None = None
        self._clock: _Clock | None = None
        self._progress: _Progress | None = None
        self._start: pd.Timestamp | None = None
        self._values: dict[str, np.ndarray] = {}
        self._node_xy: np.ndarray | None = None
        self._edges: np.ndarray | None = None
        self._gauges: np.ndarray | None = None  # user indices of the gauged reaches (DA on)
        self._lake_nodes: np.ndarray | None = None  # reach index of each lake (lakes on)

    # ----------------------------------------------------------------- control
    def initialize(self, config_file: str) -> None:
        """Load the model and network named by the YAML file and set up time and state.

        A second ``initialize`` without ``finalize`` is refused: it would swap the buffers that
        pointers from :meth:`get_value_ptr` still point to.
        """
        if self._router is not None:
            raise RuntimeError(
                "DdrRouting is already initialized: call finalize() before initializing it "
                "again (pointers from get_value_ptr belong to the current run)"
            )
        config = load_bmi_config(config_file)
        router = TrainedRouter.load(config.model, config.network, config.time.dt, config.device)
        restart = None
        if config.state.restart_file:
            restart = read_restart(
                config.state.restart_file, router.reach_ids, router.fingerprint,
                router.lake_reach_ids,
            )  # fmt: skip
        start = self._start_time(config, router, restart)
        clock = self._make_clock(config, router, start)
        self._values = self._buffers(router)
        self._gauges = self._gauge_index(config, router)
        if self._gauges is not None:
            self._values[OBSERVED.name] = np.full(router.network.n_reaches, np.nan, np.float32)
            self._values[CORRECTION.name] = np.zeros(router.network.n_reaches, np.float32)
        self._node_xy = reach_points(gpd.read_parquet(config.network.reaches), router.reach_ids)
        self._lake_nodes = None if router.lakes is None else router.lakes.reach_index
        down = router.network.downstream_index
        inner = np.flatnonzero(down >= 0)
        self._edges = np.column_stack([inner, down[inner]]).astype(np.int64)
        self._config, self._router, self._clock, self._start = config, router, clock, start
        self._progress = self._first_progress(router, clock.day_of(0), restart, config)
        if self._gauges is not None:
            self._progress = dataclasses.replace(
                self._progress, nudging=self._first_nudging(config, restart)
            )
        self._publish()
        logger.info(
            "DdrRouting: %d reaches, %s + %d steps of %g s, model %s",
            router.network.n_reaches,
            start.isoformat(),
            clock.n_steps,
            clock.dt,
            router.fingerprint,
        )

    @staticmethod
    def _buffers(router: TrainedRouter) -> dict[str, np.ndarray]:
        """One persistent array per variable (inflow 0, discharge NaN until the first step)."""
        n = router.network.n_reaches
        buffers = {
            INFLOW.name: np.zeros(n, dtype=np.float32),
            DISCHARGE.name: np.full(n, np.nan, dtype=np.float32),
            REACH_ID.name: np.asarray(router.reach_ids, dtype=np.int64).copy(),
            **{PARAMETERS[p].name: np.zeros(n, dtype=np.float32) for p in router.parameter_names},
        }
        lake_ids = router.lake_reach_ids
        if lake_ids is not None:
            buffers[LAKE_REACH_ID.name] = lake_ids.copy()
            buffers[LAKE_ELEVATION.name] = np.full(lake_ids.size, np.nan, dtype=np.float64)
        return buffers

    @staticmethod
    def _gauge_index(config: BmiConfig, router: TrainedRouter) -> np.ndarray | None:
        """User indices of ``assimilation.reach_ids`` (None when assimilation is off)."""
        if not config.assimilation.enabled:
            return None
        wanted = np.asarray(config.assimilation.reach_ids, np.int64)
        unknown = np.setdiff1d(wanted, router.reach_ids)
        if unknown.size:
            raise ValueError(
                f"assimilation.reach_ids not in the routed network: {format_values(unknown)}"
            )
        return np.asarray(router.network.index_of(wanted), np.int64)

    @staticmethod
    def _first_nudging(config: BmiConfig, restart: RoutingState | None) -> NudgingState:
        """The nudging state at model time 0: the restart's, aligned on the gauges, or none."""
        ids = np.asarray(config.assimilation.reach_ids, np.int64)
        if restart is None or restart.nudging is None:
            return NudgingState.empty(ids.size)
        return NudgingState(*restart.nudging.on(ids))

    @staticmethod
    def _first_progress(
        router: TrainedRouter, day: int, restart: RoutingState | None, config: BmiConfig
    ) -> _Progress:
        """The state at model time 0 (from the restart when given) with ``day``'s parameters."""
        discharge, lstm = None, None
        if restart is not None:
            if restart.lstm is not None:
                lstm = (restart.lstm[0].to(router.device), restart.lstm[1].to(router.device))
            if not np.isnan(restart.discharge).all():
                discharge = torch.from_numpy(restart.discharge).to(router.device)
        physical, after = router.day_parameters(day, lstm)
        params, lakes = router.day_lakes(physical)
        elevation = router.initial_lake_elevation()
        if restart is not None and restart.lakes is not None:
            elevation = torch.from_numpy(restart.lakes.elevation).to(router.device)
        elif restart is not None and elevation is not None:  # an initial state without lakes
            logger.warning(
                "DdrRouting: restart file %s has no lake levels: the %d lakes start from the "
                "lakes table's initial elevation",
                config.state.restart_file,
                elevation.numel(),
            )
        return _Progress(0, discharge, day, lstm, after, params, None, lakes, elevation)

    @staticmethod
    def _start_time(
        config: BmiConfig, router: TrainedRouter, restart: RoutingState | None
    ) -> pd.Timestamp:
        configured = None if config.time.start is None else pd.Timestamp(config.time.start)
        if restart is not None:
            if configured is not None and configured != restart.time:
                raise ValueError(
                    f"time.start {configured.isoformat()} differs from the time of the restart "
                    f"file {config.state.restart_file} ({restart.time.isoformat()})"
                )
            return restart.time
        return configured if configured is not None else router.dates[0]

    @staticmethod
    def _make_clock(config: BmiConfig, router: TrainedRouter, start: pd.Timestamp) -> _Clock:
        dt = config.time.dt
        first, last = router.dates[0], router.dates[-1]
        end = pd.Timestamp(config.time.end) if config.time.end is not None else last
        if not first <= start.normalize() <= last:
            raise ValueError(
                f"start {start.isoformat()} is outside the model inputs {first.date()}..{last.date()}"
            )
        if end > last:
            raise ValueError(f"time.end {end.date()} is after the inputs' last day {last.date()}")
        offset = (start - first).total_seconds() / dt
        if offset != int(offset):
            raise ValueError(f"start {start.isoformat()} is not on the {dt:g} s step grid")
        stop = ((end - first).days + 1) * SECONDS_PER_DAY / dt
        n_steps = int(stop) - int(offset)
        if n_steps < 1:
            raise ValueError(f"time.end {end.date()} is before the start {start.isoformat()}")
        return _Clock(dt=dt, t0=int(offset), n_steps=n_steps)

    def update(self) -> None:
        """Advance one routing step with the current lateral inflow."""
        self._advance(1)

    def update_until(self, time: float) -> None:
        """Advance to ``time`` (s, on the step grid), holding the current lateral inflow."""
        clock, progress = self._ready()
        if not math.isfinite(float(time)):
            raise ValueError(
                f"time {time} s is not finite: give a time on the {clock.dt:g} s step grid up to "
                f"the end time {self.get_end_time():g} s"
            )
        steps = (float(time) - progress.step * clock.dt) / clock.dt
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"time {time} s is not on the {clock.dt:g} s step grid")
        if round(steps) < 0:
            raise ValueError(
                f"time {time} s is before the current time {self.get_current_time()} s"
            )
        self._advance(round(steps))

    def finalize(self) -> None:
        """Write the restart file when ``state.write_restart`` is set, then release the model."""
        if self._config is not None and self._config.state.write_restart:
            self.save_state(self._config.state.write_restart)
        self._config = self._router = self._clock = self._progress = self._start = None
        self._values, self._node_xy, self._edges, self._lake_nodes = {}, None, None, None

    def save_state(self, path: str | Path) -> Path:
        """Write the state at the current time to a restart file (also at ``finalize``)."""
        clock, progress = self._ready()
        router = self._router
        assert router is not None
        next_day = clock.day_of(progress.step)
        entering = progress.lstm_entering if next_day == progress.day else progress.lstm_after
        if entering is None and router.lstm_layout is not None:  # not started: zeros, explicitly
            layers, hidden = router.lstm_layout
            zeros = torch.zeros(layers, router.network.n_reaches, hidden)
            entering = (zeros, zeros.clone())
        discharge = self._values[DISCHARGE.name].copy()
        nudging = None
        if self._gauges is not None and progress.nudging is not None:
            n = progress.nudging
            gauge_ids = np.asarray(router.reach_ids)[self._gauges]
            nudging = GaugeNudging(gauge_ids, n.last_value, n.age, n.correction)
        lakes = None
        if progress.lake_elevation is not None:
            assert router.lake_reach_ids is not None
            levels = progress.lake_elevation.detach().cpu().numpy().copy()
            lakes = LakeLevels(router.lake_reach_ids, levels)
        state = RoutingState(
            self._datetime(progress.step), discharge, entering, router.fingerprint, nudging, lakes
        )
        target = write_restart(path, state, router.reach_ids, clock.dt)
        logger.info("DdrRouting: restart written to %s (%s)", target, state.time.isoformat())
        return target

    # ----------------------------------------------------------------- stepping
    def _ready(self) -> tuple[_Clock, _Progress]:
        if self._clock is None or self._progress is None:
            raise RuntimeError("DdrRouting is not initialized: call initialize(config_file) first")
        return self._clock, self._progress

    def _datetime(self, step: int) -> pd.Timestamp:
        assert self._start is not None and self._clock is not None
        return self._start + pd.Timedelta(seconds=step * self._clock.dt)

    def _with_day(self, progress: _Progress, day: int) -> _Progress:
        """``progress`` with the parameters of input day ``day`` (the next day, or the same)."""
        if day == progress.day:
            return progress
        if day != progress.day + 1:
            raise RuntimeError(f"days must follow each other: loaded {progress.day}, asked {day}")
        assert self._router is not None
        physical, after = self._router.day_parameters(day, progress.lstm_after)
        params, lakes = self._router.day_lakes(physical)
        return dataclasses.replace(
            progress, day=day, lstm_entering=progress.lstm_after, lstm_after=after,
            params=params, lakes=lakes,
        )  # fmt: skip

    def _advance(self, n_steps: int) -> None:
        """Route ``n_steps`` steps of the current inflow, one call per day; all or nothing."""
        clock, progress = self._ready()
        router = self._router
        assert router is not None
        if progress.step + n_steps > clock.n_steps:
            raise ValueError(
                f"cannot advance {n_steps} steps from {progress.step * clock.dt:g} s: the end "
                f"time is {self.get_end_time():g} s"
            )
        inflow = torch.from_numpy(self._values[INFLOW.name].copy()).to(router.device)
        observed = self._observed()
        first_day = progress.day
        while n_steps > 0:
            progress = self._with_day(progress, clock.day_of(progress.step))
            k = min(n_steps, clock.steps_left_in_day(progress.step))
            lakes = self._lakes_now(progress)
            if observed is None:
                routed = router.route(inflow, progress.params, progress.discharge, steps=k,
                                      lakes=lakes)  # fmt: skip
            else:
                routed, progress = self._route_nudged(router, progress, inflow, observed, k, lakes)
            progress = dataclasses.replace(
                progress, step=progress.step + k, discharge=routed.discharge[-1],
                lake_elevation=routed.lake_elevation,
            )  # fmt: skip
            n_steps -= k
        self._progress = progress
        if observed is not None:  # observations are consumed by the update
            self._values[OBSERVED.name][:] = np.nan
        self._publish(parameters=progress.day != first_day)

    @staticmethod
    def _lakes_now(progress: _Progress) -> LevelPool | None:
        """The day's lakes starting from the carried elevation (None: no lakes)."""
        if progress.lakes is None:
            return None
        return dataclasses.replace(progress.lakes, elevation=progress.lake_elevation)

    def _observed(self) -> np.ndarray | None:
        """(G,) observations set at the gauged reaches (None: assimilation off)."""
        if self._gauges is None:
            return None
        return self._values[OBSERVED.name][self._gauges].astype(np.float64)

    def _route_nudged(  # noqa: PLR0913, PLR0917 (one engine call of the update)
        self, router: TrainedRouter, progress: _Progress, inflow: torch.Tensor,
        observed: np.ndarray, k: int, lakes: LevelPool | None,
    ) -> tuple[RoutedSteps, _Progress]:  # fmt: skip
        """``k`` steps nudged toward ``observed`` (held over them), the nudging state carried."""
        assert self._config is not None and self._gauges is not None
        da = self._config.assimilation
        nudging = Nudging(self._gauges, np.tile(observed, (k, 1)), da.gain, da.decay_minutes,
                          progress.nudging)  # fmt: skip
        routed = router.route(inflow, progress.params, progress.discharge, steps=k, lakes=lakes,
                              nudging=nudging)  # fmt: skip
        assert routed.assimilation is not None
        return routed, dataclasses.replace(progress, nudging=routed.assimilation.state)

    def _publish(self, parameters: bool = True) -> None:
        """Copy the state (and the parameters) into the output buffers in place."""
        progress = self._progress
        assert progress is not None
        if progress.discharge is not None:
            np.copyto(self._values[DISCHARGE.name], progress.discharge.cpu().numpy())
        if self._gauges is not None and progress.nudging is not None:
            self._values[CORRECTION.name][self._gauges] = progress.nudging.correction
        if progress.lake_elevation is not None:
            np.copyto(self._values[LAKE_ELEVATION.name], progress.lake_elevation.cpu().numpy())
        for name, values in progress.params.items() if parameters else ():
            np.copyto(
                self._values[PARAMETERS[name].name], values.cpu().numpy(), casting="same_kind"
            )

    # ----------------------------------------------------------------- metadata
    def get_component_name(self) -> str:
        return self._NAME

    def get_input_item_count(self) -> int:
        return len(self.get_input_var_names())

    def get_output_item_count(self) -> int:
        return len(self.get_output_var_names())

    def get_input_var_names(self) -> tuple[str, ...]:
        return (INFLOW.name,) if self._gauges is None else (INFLOW.name, OBSERVED.name)

    def get_output_var_names(self) -> tuple[str, ...]:
        names = self._router.parameter_names if self._router else ROUTING_PARAMETERS
        extra = () if self._gauges is None else (CORRECTION.name,)
        if self._lake_nodes is not None:
            extra = (*extra, LAKE_ELEVATION.name, LAKE_REACH_ID.name)
        return (DISCHARGE.name, REACH_ID.name, *(PARAMETERS[p].name for p in names), *extra)

    def _variable(self, name: str) -> Variable:
        every = (INFLOW, OBSERVED, DISCHARGE, REACH_ID, CORRECTION, LAKE_ELEVATION, LAKE_REACH_ID,
                 *PARAMETERS.values())  # fmt: skip
        known = {v.name: v for v in every}
        if name not in known or (
            name not in self.get_input_var_names() and name not in self.get_output_var_names()
        ):
            raise KeyError(
                f"unknown variable {name!r}; inputs {list(self.get_input_var_names())}, "
                f"outputs {list(self.get_output_var_names())}"
            )
        return known[name]

    def get_var_grid(self, name: str) -> int:
        return self._variable(name).grid

    def get_var_type(self, name: str) -> str:
        return self._variable(name).dtype

    def get_var_units(self, name: str) -> str:
        return self._variable(name).units

    def get_var_itemsize(self, name: str) -> int:
        return np.dtype(self.get_var_type(name)).itemsize

    def get_var_nbytes(self, name: str) -> int:
        return self.get_var_itemsize(name) * self.get_grid_size(self.get_var_grid(name))

    def get_var_location(self, name: str) -> str:
        self._variable(name)
        return "node"

    # ----------------------------------------------------------------- time
    def get_current_time(self) -> float:
        clock, progress = self._ready()
        return float(progress.step * clock.dt)

    def get_start_time(self) -> float:
        return 0.0

    def get_end_time(self) -> float:
        clock, _ = self._ready()
        return float(clock.n_steps * clock.dt)

    def get_time_units(self) -> str:
        return "s"

    def get_time_step(self) -> float:
        clock, _ = self._ready()
        return float(clock.dt)

    def get_start_datetime(self) -> pd.Timestamp:
        """Calendar time of model time 0 (not part of BMI; for frameworks and tests)."""
        self._ready()
        assert self._start is not None
        return self._start

    # ----------------------------------------------------------------- values
    def _buffer(self, name: str) -> np.ndarray:
        self._variable(name)
        self._ready()
        return self._values[name]

    def get_value(self, name: str, dest: np.ndarray) -> np.ndarray:
        dest[:] = self._buffer(name)
        return dest

    def get_value_ptr(self, name: str) -> np.ndarray:
        """The live buffer: writable for the inflow, a read-only view of every output."""
        buffer = self._buffer(name)
        if name in self.get_input_var_names():
            return buffer
        view = buffer.view()
        view.flags.writeable = False
        return view

    def get_value_at_indices(self, name: str, dest: np.ndarray, inds: np.ndarray) -> np.ndarray:
        dest[:] = self._buffer(name)[inds]
        return dest

    def set_value(self, name: str, src: np.ndarray) -> None:
        self._set(name, src, None)

    def set_value_at_indices(self, name: str, inds: np.ndarray, src: np.ndarray) -> None:
        self._set(name, src, self._indices(name, inds))

    def _indices(self, name: str, inds: np.ndarray) -> np.ndarray:
        """``inds`` as a 1-D int64 array inside ``[0, grid size)``, else ``ValueError``."""
        raw = np.asarray(inds)
        if raw.ndim != 1 or raw.dtype.kind not in "iu":
            raise ValueError(
                f"{name}: indices must be a 1-D integer array, got {raw.dtype} of shape {raw.shape}"
            )
        size = self._buffer(name).size
        outside = raw[(raw < 0) | (raw >= size)]
        if outside.size:
            raise ValueError(
                f"{name}: indices must lie in [0, {size}) (no negative indices), got "
                f"{format_values(outside)}"
            )
        return raw.astype(np.int64)

    def _set(self, name: str, src: np.ndarray, inds: np.ndarray | None) -> None:
        """Validate, then write ``src`` into an input buffer (all of it or at ``inds``): the
        inflow finite and >= 0; observations >= 0 or NaN (none), and NaN off the gauges."""
        if name not in self.get_input_var_names():
            self._variable(name)
            raise ValueError(
                f"{name} is an output; only {list(self.get_input_var_names())} can be set"
            )
        buffer = self._buffer(name)
        expected = buffer.size if inds is None else inds.size
        values = _real_vector(name, src, expected)
        if name == OBSERVED.name:
            self._check_observed(values, inds)
        bad = ~np.isfinite(values) | (values < 0)
        if name == OBSERVED.name:
            bad &= ~np.isnan(values)
        if bad.any():
            ids = self._values[REACH_ID.name]
            where = ids[bad] if inds is None else ids[inds[bad]]
            raise ValueError(
                f"{name} must be finite and >= 0 (m3 s-1); bad values at reach ids "
                f"{format_values(where)}"
            )
        if inds is None:
            buffer[:] = values
        else:
            buffer[inds] = values

    def _check_observed(self, values: np.ndarray, inds: np.ndarray | None) -> None:
        """Observations may only be set at the gauged reaches (elsewhere NaN)."""
        assert self._gauges is not None
        where = np.arange(values.size) if inds is None else inds
        off = ~np.isin(where, self._gauges) & ~np.isnan(values)
        if off.any():
            ids = self._values[REACH_ID.name][where[off]]
            raise ValueError(
                f"{OBSERVED.name}: observations at reach ids {format_values(ids)}, which are not "
                "in assimilation.reach_ids"
            )

    # ----------------------------------------------------------------- grid
    def _grid(self, grid: int) -> np.ndarray | slice:
        """The reaches of ``grid``'s nodes: every reach (0), the lakes' outlet reaches (1)."""
        self._ready()
        if grid == REACH_GRID:
            return slice(None)
        if grid == LAKE_GRID and self._lake_nodes is not None:
            return self._lake_nodes
        grids = "grids 0 (reaches) and 1 (lakes)" if self._lake_nodes is not None else "grid 0"
        raise KeyError(f"unknown grid {grid}; this component has {grids} only")

    def _grid_edges(self, grid: int) -> np.ndarray:
        """``(E, 2)`` links of ``grid``: the network's; none between the lakes."""
        self._grid(grid)
        assert self._edges is not None
        return self._edges if grid == REACH_GRID else np.zeros((0, 2), np.int64)

    def get_grid_rank(self, grid: int) -> int:
        self._grid(grid)
        return 2

    def get_grid_size(self, grid: int) -> int:
        nodes = self._grid(grid)
        assert self._router is not None
        n = self._router.network.n_reaches
        return int(n if isinstance(nodes, slice) else nodes.size)

    def get_grid_type(self, grid: int) -> str:
        self._grid(grid)
        return "unstructured"

    def get_grid_shape(self, grid: int, shape: np.ndarray) -> np.ndarray:
        raise NotImplementedError("the reach and lake grids are unstructured: they have no shape")

    def get_grid_spacing(self, grid: int, spacing: np.ndarray) -> np.ndarray:
        raise NotImplementedError("the reach and lake grids are unstructured: no spacing")

    def get_grid_origin(self, grid: int, origin: np.ndarray) -> np.ndarray:
        raise NotImplementedError("the reach and lake grids are unstructured: no origin")

    def get_grid_x(self, grid: int, x: np.ndarray) -> np.ndarray:
        """Longitude (or x) of each node's reach's representative point (CRS of the reaches
        table; a lake sits at its outlet reach)."""
        nodes = self._grid(grid)
        assert self._node_xy is not None
        x[:] = self._node_xy[nodes, 0]
        return x

    def get_grid_y(self, grid: int, y: np.ndarray) -> np.ndarray:
        """Latitude (or y) of each node's reach's representative point."""
        nodes = self._grid(grid)
        assert self._node_xy is not None
        y[:] = self._node_xy[nodes, 1]
        return y

    def get_grid_z(self, grid: int, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError("the reach and lake grids are two-dimensional: they have no z")

    def get_grid_node_count(self, grid: int) -> int:
        return self.get_grid_size(grid)

    def get_grid_edge_count(self, grid: int) -> int:
        return int(self._grid_edges(grid).shape[0])

    def get_grid_face_count(self, grid: int) -> int:
        self._grid(grid)
        return 0

    def get_grid_edge_nodes(self, grid: int, edge_nodes: np.ndarray) -> np.ndarray:
        """``(upstream node, downstream node)`` of every link, flattened."""
        edge_nodes[:] = self._grid_edges(grid).reshape(-1)
        return edge_nodes

    def get_grid_face_edges(self, grid: int, face_edges: np.ndarray) -> np.ndarray:
        self._grid(grid)
        return face_edges  # no faces

    def get_grid_face_nodes(self, grid: int, face_nodes: np.ndarray) -> np.ndarray:
        self._grid(grid)
        return face_nodes  # no faces

    def get_grid_nodes_per_face(self, grid: int, nodes_per_face: np.ndarray) -> np.ndarray:
        self._grid(grid)
        return nodes_per_face  # no faces
