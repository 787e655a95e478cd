"""The model-ready dataset in memory (:class:`ModelInputs`) and sets of gauges on it (:class:`GaugeSet`).

``model_inputs.zarr`` (architecture.md §4) is held as numpy arrays aligned on reach ids and dates;
batches and rollouts slice it by integer index. Containers only: building routing problems from
them is :mod:`ddr_pipeline.simulation.batches` and :mod:`ddr_pipeline.simulation`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from ddr_pipeline.data.schema import (
    FLOW_SCALE_COL,
    INITIAL_ELEVATION_COL,
    LAKE_OPTIONAL_PARAMS,
    LAKE_PARAMS,
)
from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.parameter_registry import OBSERVABLE_PARAMETERS

logger = logging.getLogger(__name__)

#: Channel variables of ``model_inputs.zarr`` -> key used by the routing engine.
CHANNEL_VARIABLES = {"length_m": "length", "slope": "slope", "x": "x"}
#: Optional observed channel variables -> the parameter they may replace (where not NaN).
OBSERVED_GEOMETRY = {column: name for name, column in OBSERVABLE_PARAMETERS.items()}


def _lake_param(ds: xr.Dataset, name: str) -> np.ndarray:
    """(L,) float64 values of ``lake_<name>``; an optional parameter absent takes its default."""
    var = f"lake_{name}"
    if var not in ds.data_vars and name in LAKE_OPTIONAL_PARAMS:
        return np.full(ds["lake_id"].size, LAKE_OPTIONAL_PARAMS[name], np.float64)
    return np.asarray(ds[var].values, np.float64)


@dataclass(frozen=True)
class LakeTable:
    """The dataset's level-pool lakes (``lakes.parquet``), each at one reach.

    ``reach_index``: (L,) indices of the lake reaches (into the reaches the table belongs to);
    ``params``: each name of ``schema.LAKE_PARAMS`` -> (L,) float64 (model inputs written
    before the optional ``withdrawal`` existed read it as 0); ``initial_elevation``: (L,) water
    elevation (m) at the dataset's start.
    """

    lake_ids: np.ndarray
    reach_index: np.ndarray
    params: dict[str, np.ndarray]
    initial_elevation: np.ndarray

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, network: RiverNetwork) -> LakeTable | None:
        """The ``lake_*`` variables of the model inputs (None without lakes)."""
        if "lake_reach_id" not in ds.data_vars:
            return None
        reach_ids = np.asarray(ds["lake_reach_id"].values, dtype=np.int64)
        return cls(
            lake_ids=np.asarray(ds["lake_id"].values, dtype=np.int64),
            reach_index=np.asarray(network.index_of(reach_ids), dtype=np.int64),
            params={n: _lake_param(ds, n) for n in LAKE_PARAMS},
            initial_elevation=np.asarray(ds[f"lake_{INITIAL_ELEVATION_COL}"].values, np.float64),
        )

    def __len__(self) -> int:
        return int(self.lake_ids.size)

    def on(self, reach_index: np.ndarray) -> LakeTable | None:
        """The lakes on the sorted reaches ``reach_index``, re-indexed into them (None: none)."""
        position = np.searchsorted(reach_index, self.reach_index)
        inside = (position < reach_index.size) & (
            reach_index[np.minimum(position, reach_index.size - 1)] == self.reach_index
        )
        if not inside.any():
            return None
        return LakeTable(
            lake_ids=self.lake_ids[inside],
            reach_index=position[inside].astype(np.int64),
            params={name: values[inside] for name, values in self.params.items()},
            initial_elevation=self.initial_elevation[inside],
        )


@dataclass(frozen=True)
class ModelInputs:
    """The model-ready dataset as numpy arrays, aligned on ``reach_ids`` / ``dates``."""

    reach_ids: np.ndarray  # (N,) int64
    network: RiverNetwork
    channel: dict[str, np.ndarray]  # length, slope, x: (N,) float32
    observed_geometry: dict[str, np.ndarray]  # parameter name -> observed (N,), NaN = none
    attributes: np.ndarray  # (N, A) float32, z-scored
    attributes_raw: np.ndarray  # (N, A) float32
    attribute_names: tuple[str, ...]
    forcings: np.ndarray  # (T, N, F) float32, z-scored
    forcing_names: tuple[str, ...]
    lateral_inflow: np.ndarray  # (T, N) float32, daily m3/s
    observations: np.ndarray  # (T, G) float32, m3/s, NaN = missing
    gage_ids: tuple[str, ...]
    dates: pd.DatetimeIndex  # (T,) daily
    periods: dict[str, tuple[str, str]] = field(default_factory=dict)  # e.g. train, test
    lakes: LakeTable | None = None  # level-pool lakes of lakes.parquet (None: none)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> ModelInputs:
        """Build from the ``model_inputs.zarr`` dataset (loads it into memory)."""
        missing = {"to_id", "attributes", "attributes_raw", "lateral_inflow", "forcings"}
        missing |= {"observations", *CHANNEL_VARIABLES}
        missing -= set(ds.data_vars)
        if missing:
            raise KeyError(f"model inputs lack variables {sorted(missing)}")
        reach_ids = np.asarray(ds["reach_id"].values, dtype=np.int64)
        to_ids = np.asarray(ds["to_id"].values, dtype=np.int64)
        channel = {
            key: np.asarray(ds[var].values, dtype=np.float32)
            for var, key in CHANNEL_VARIABLES.items()
        }
        geometry = {
            name: np.asarray(ds[var].values, dtype=np.float32)
            for var, name in OBSERVED_GEOMETRY.items()
            if var in ds.data_vars
        }
        network = RiverNetwork.from_ids(reach_ids, to_ids)
        return cls(
            reach_ids=reach_ids,
            network=network,
            channel=channel,
            observed_geometry=geometry,
            attributes=_array(ds["attributes"], ("reach_id", "attribute")),
            attributes_raw=_array(ds["attributes_raw"], ("reach_id", "attribute")),
            attribute_names=tuple(str(a) for a in ds["attribute"].values),
            forcings=_array(ds["forcings"], ("time", "reach_id", "forcing")),
            forcing_names=tuple(str(f) for f in ds["forcing"].values),
            lateral_inflow=_array(ds["lateral_inflow"], ("time", "reach_id")),
            observations=_array(ds["observations"], ("time", "gage_id")),
            gage_ids=tuple(str(g) for g in ds["gage_id"].values),
            dates=pd.DatetimeIndex(ds["time"].values),
            periods={
                key.removesuffix("_period"): (str(value[0]), str(value[1]))
                for key, value in ds.attrs.items()
                if key.endswith("_period") and len(value) == 2
            },
            lakes=LakeTable.from_dataset(ds, network),
        )

    def period(self, name_or_dates: str | Sequence[str]) -> tuple[int, int]:
        """Day positions of a named period of the inputs (``"train"``, ``"test"``) or of dates."""
        if isinstance(name_or_dates, str):
            if name_or_dates not in self.periods:
                raise KeyError(
                    f"the model inputs define no {name_or_dates!r} period "
                    f"(attributes: {sorted(self.periods)})"
                )
            return self.day_range(*self.periods[name_or_dates])
        start, end = name_or_dates
        return self.day_range(start, end)

    def day_range(self, start: str | pd.Timestamp, end: str | pd.Timestamp) -> tuple[int, int]:
        """Return ``(first, last + 1)`` day positions of the inclusive period ``[start, end]``."""
        t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
        if t0 > t1:
            raise ValueError(f"period start {t0.date()} is after its end {t1.date()}")
        if t0 < self.dates[0] or t1 > self.dates[-1]:
            raise ValueError(
                f"period {t0.date()}..{t1.date()} is outside the model inputs "
                f"{self.dates[0].date()}..{self.dates[-1].date()}"
            )
        return int(self.dates.searchsorted(t0)), int(self.dates.searchsorted(t1, side="right"))

    def gauge_columns(self, staids: Sequence[str]) -> np.ndarray:
        """Column index of every gauge in ``observations`` (clear error on unknown STAIDs)."""
        position = {g: i for i, g in enumerate(self.gage_ids)}
        unknown = [s for s in staids if s not in position]
        if unknown:
            raise KeyError(f"gauges {unknown[:10]} have no observations in the model inputs")
        return np.array([position[s] for s in staids], dtype=np.int64)


def _array(da: xr.DataArray, dims: tuple[str, ...]) -> np.ndarray:
    """``da`` transposed to ``dims`` as a float32 numpy array."""
    return np.ascontiguousarray(da.transpose(*dims).values, dtype=np.float32)


def _flow_scale_column(table: pd.DataFrame) -> np.ndarray | None:
    """The optional ``flow_scale`` column as float64 (NaN -> 1); ``None`` when absent."""
    if FLOW_SCALE_COL not in table.columns:
        return None
    scale = table[FLOW_SCALE_COL].astype("float64").fillna(1.0).to_numpy()
    bad = ~((scale > 0) & (scale <= 1))
    if bad.any():
        staids = [str(s) for s in table["STAID"].to_numpy()[bad][:10]]
        raise ValueError(f"{FLOW_SCALE_COL} must be in (0, 1] for gauges {staids}")
    return scale


@dataclass(frozen=True)
class GaugeSet:
    """Gauges of one split: STAIDs, their reaches (global indices) and observation columns.

    ``flow_scale`` (``(G,)`` float64 in (0, 1], or ``None`` = no scaling) multiplies the lateral
    inflow of each gauge's reaches whenever the gauge is routed (batches, inference, baselines).
    """

    staids: tuple[str, ...]
    reach_index: tuple[np.ndarray, ...]  # per gauge: global reach indices summed at the gauge
    obs_column: np.ndarray  # (G,) columns of ModelInputs.observations
    flow_scale: np.ndarray | None = None  # (G,) inflow factor of the gauge reaches

    @classmethod
    def from_table(cls, gauges: pd.DataFrame, inputs: ModelInputs, split: str | None) -> GaugeSet:
        """Gauges of ``split`` (``None`` = all) from the ``gauges.parquet`` table.

        The optional ``flow_scale`` column (NaN = 1) is kept; values outside (0, 1] raise
        ``ValueError`` naming the gauges.
        """
        table = gauges if split is None else gauges[gauges["split"].astype(str) == split]
        if table.empty:
            raise ValueError(f"no gauges with split == {split!r} in the gauge table")
        staids = tuple(str(s) for s in table["STAID"])
        reach_index = tuple(
            np.asarray(inputs.network.index_of(np.asarray(list(ids), dtype=np.int64)))
            for ids in table["reach_ids"]
        )
        flow_scale = _flow_scale_column(table)
        return cls(staids, reach_index, inputs.gauge_columns(staids), flow_scale)

    def __len__(self) -> int:
        return len(self.staids)
