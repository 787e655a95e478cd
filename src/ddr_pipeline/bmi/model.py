"""The trained model on a network: the component's one coupling to model loading and routing.

Everything the BMI component needs from the rest of the library goes through
:class:`TrainedRouter`: loading the trained model (checkpoint | run | MLflow URI) and the
geodataset's model inputs, the physical parameters of one day (KAN + one LSTM day carrying its
state, exactly as the chunked rollout of :mod:`ddr_pipeline.simulation`), and Muskingum–Cunge
steps from a carried discharge state with the routing settings of the training configuration
(:class:`ddr_pipeline.simulation.RoutingSettings`: floors, leakance, X default, Cunge options)
and, with ``routing.lakes`` on, the level-pool lakes of the routed reaches, exactly as the
rollout routes them (:mod:`ddr_pipeline.simulation.lakes`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ddr_pipeline import simulation
from ddr_pipeline.bmi.config import NetworkSource
from ddr_pipeline.bmi.variables import LEAKANCE_PARAMETERS, ROUTING_PARAMETERS
from ddr_pipeline.config.model_source import ModelSource
from ddr_pipeline.data.containers import LakeTable, ModelInputs
from ddr_pipeline.data.io import read_zarr
from ddr_pipeline.data.provenance import check_provenance
from ddr_pipeline.model_store.checkpoints import (
    LoadedCheckpoint,
    check_compatible,
    model_fingerprint,
)
from ddr_pipeline.model_store.loader import load_model
from ddr_pipeline.models import LSTMState
from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.parameter_registry import DDR_DERIVED_PARAMETERS

logger = logging.getLogger(__name__)


def read_normalization_stats(path: str | Path) -> dict[str, Any]:
    """The statistics JSON: a file, or the latest version in a Kedro versioned folder."""
    source = Path(path)
    if source.is_dir():
        versions = sorted(source.glob(f"*/{source.name}"))
        if not versions:
            raise FileNotFoundError(f"no version of {source.name} in the versioned folder {source}")
        source = versions[-1]
    if not source.is_file():
        raise FileNotFoundError(f"normalisation statistics {source} do not exist")
    return json.loads(source.read_text())


class TrainedRouter:
    """A trained model routing one domain of a geodataset, one day of parameters at a time."""

    def __init__(
        self,
        ckpt: LoadedCheckpoint,
        inputs: ModelInputs,
        domain: simulation.RoutingProblem,
        dt: float,
        device: str = "cpu",
    ) -> None:
        self.ckpt = ckpt
        self.dt = dt
        self.inputs = inputs
        self.domain = domain
        self.device = torch.device(device)
        self.source = simulation.TrainedParameters.on_inputs(
            ckpt.model.eval(), ckpt.config, inputs.attribute_names, inputs.forcing_names
        )
        self.settings = simulation.RoutingSettings.from_config(ckpt.config, dt=dt)
        idx = domain.reach_index
        self._attributes = self._tensor(inputs.attributes[idx])
        self._attributes_raw = self._tensor(inputs.attributes_raw[idx])
        self._observed = {k: self._tensor(v[idx]) for k, v in inputs.observed_geometry.items()}
        self._channel = {k: self._tensor(v[idx]) for k, v in inputs.channel.items()}
        self.fingerprint = model_fingerprint(ckpt.model.state_dict())

    @classmethod
    def load(
        cls, model: ModelSource, network: NetworkSource, dt: float, device: str = "cpu"
    ) -> TrainedRouter:
        """Load the model and the network inputs; fail on any mismatch between them."""
        ckpt = load_model(model)
        if not Path(network.model_inputs).exists():
            raise FileNotFoundError(f"model inputs {network.model_inputs} do not exist")
        dataset = read_zarr(network.model_inputs)
        stats = read_normalization_stats(network.normalization_stats)
        source = model.checkpoint or model.mlflow_model_uri or model.run_name
        check_provenance(
            model_inputs=dataset.attrs,
            stats=stats,
            checkpoint=ckpt.payload,
            checkpoint_name=f"the trained model ({source})",
        )
        inputs = ModelInputs.from_dataset(dataset)
        # Only the data is checked against the checkpoint: its configuration is the one the
        # model was built from (a re-dump with today's defaults, so keys added since it was
        # written do not count as differences).
        resolved = {**ckpt.payload, "config": ckpt.config.model_dump(mode="json")}
        check_compatible(resolved, ckpt.config, inputs.attribute_names, inputs.forcing_names, stats)
        domain = simulation.reach_problem(inputs, network.target_reach_ids or None)
        ckpt.model.to(device)
        return cls(ckpt, inputs, domain, dt, device)

    def _tensor(self, values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values)).to(self.device)

    @property
    def network(self) -> RiverNetwork:
        """The routed (sub-)network; columns of every per-reach array follow its ``ids``."""
        return self.domain.network

    @property
    def reach_ids(self) -> np.ndarray:
        """``(N,)`` ids of the routed reaches."""
        return self.inputs.reach_ids[self.domain.reach_index]

    @property
    def dates(self) -> pd.DatetimeIndex:
        """Days of the model inputs (the forcings the LSTM can read)."""
        return self.inputs.dates

    @property
    def lakes(self) -> LakeTable | None:
        """The level-pool lakes routed (None: ``routing.lakes`` off, or no lake on the reaches)."""
        return self.domain.lakes if self.settings.lakes else None

    @property
    def lake_reach_ids(self) -> np.ndarray | None:
        """``(L,)`` ids of the lake reaches, in the order of the lakes' state (None: no lakes)."""
        lakes = self.lakes
        return None if lakes is None else np.asarray(self.reach_ids[lakes.reach_index], np.int64)

    def initial_lake_elevation(self) -> torch.Tensor | None:
        """``(L,)`` float64 water elevation (m) of the lakes table (the lakes' cold start)."""
        lakes = self.lakes
        if lakes is None:
            return None
        return torch.tensor(lakes.initial_elevation, dtype=torch.float64, device=self.device)

    def day_lakes(
        self, physical: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], simulation.LevelPool | None]:
        """``(channel parameters, lakes)`` of one day's physical parameters: the learned lake
        parameters leave the channel's and set the lakes' (elevation: the table's; each routing
        call replaces it with the carried one)."""
        channel, learned = simulation.split_lake_parameters(physical)
        return channel, simulation.level_pool(self.lakes, learned, self.settings)

    @property
    def lstm_layout(self) -> tuple[int, int] | None:
        """``(layers, hidden size)`` of the LSTM state, ``None`` without an LSTM."""
        lstm = self.ckpt.model.lstm
        return None if lstm is None else (lstm.lstm.num_layers, lstm.lstm.hidden_size)

    @property
    def parameter_names(self) -> list[str]:
        """Physical parameters handed to the routing (``n``, ``top_width``, ...)."""
        leakance = LEAKANCE_PARAMETERS if self.settings.leakance else ()
        derived = DDR_DERIVED_PARAMETERS if self.settings.geometry == "ddr" else ()
        return [*(p for p in ROUTING_PARAMETERS if p not in derived), *leakance]

    def day_parameters(
        self, day: int, state: LSTMState | None
    ) -> tuple[dict[str, torch.Tensor], LSTMState | None]:
        """Physical ``(N,)`` parameters of input day ``day`` and the LSTM state after it."""
        if not 0 <= day < len(self.dates):
            raise IndexError(f"day {day} is outside the model inputs (0..{len(self.dates) - 1})")
        idx = self.domain.reach_index
        forcings = self._tensor(self.inputs.forcings[day : day + 1][:, idx])
        window = simulation.WindowInputs(
            lateral_inflow=forcings.new_zeros(1, idx.size),  # not read by parameter sources
            forcings=forcings,
            attributes=self._attributes,
            attributes_raw=self._attributes_raw,
            channel=self._channel,
            observed_geometry=self._observed,
        )
        with torch.no_grad():
            step = self.source(window, state)
        return {k: (v[0] if v.ndim == 2 else v) for k, v in step.physical.items()}, step.state

    def route(
        self,
        inflow: torch.Tensor,
        params: dict[str, torch.Tensor],
        initial_state: torch.Tensor | None,
        *,
        steps: int = 1,
        lakes: simulation.LevelPool | None = None,
        nudging: simulation.Nudging | None = None,
    ) -> simulation.RoutedSteps:
        """``steps`` steps (of :attr:`dt` s) of one inflow ``(N,)``: the ``(steps+1, N)`` states,
        the lakes' end elevation and the nudging's corrections and end state.

        ``params``: the channel parameters (:meth:`day_lakes`); ``initial_state`` ``None`` is
        the hot start (accumulated first-step inflow), as at the start of a routing-pipeline
        run; ``lakes``: the day's lakes with the elevation to start from; ``nudging``: streamflow
        nudging at gauged reaches.
        """
        with torch.no_grad():
            return simulation.route_steps(
                self.network,
                inflow,
                self._channel,
                params,
                self.settings,
                steps=steps,
                initial_state=initial_state,
                lakes=lakes,
                nudging=nudging,
            )
