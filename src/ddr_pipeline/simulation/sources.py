"""Parameter sources: what turns a window's inputs into physical routing parameters.

:class:`TrainedParameters` runs a :class:`RoutingModel` (KAN only, or KAN + LSTM carrying its
state between windows); :class:`ConstantParameters` is the untrained baseline. Network inputs are
selected by name (:class:`FeatureIndex`), the same way in training, evaluation and routing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ddr_pipeline.config.training import ParamsConfig, TrainingConfig
from ddr_pipeline.models import (
    LSTMState,
    NetworkOutputs,
    RoutingModel,
    denormalize,
    routing_parameters,
)
from ddr_pipeline.parameter_registry import routed_parameters
from ddr_pipeline.simulation.problem import WindowInputs


def _positions(wanted: Sequence[str], available: Sequence[str], what: str) -> torch.Tensor:
    index = {name: i for i, name in enumerate(available)}
    unknown = [name for name in wanted if name not in index]
    if unknown:
        raise KeyError(
            f"{what} {unknown} are not in the model inputs (available: {list(available)})"
        )
    return torch.tensor([index[name] for name in wanted], dtype=torch.long)


def ptf_names(params: ParamsConfig) -> list[str]:
    """Raw sand/clay attributes of the Cosby PTF (empty when the prior Ks is used)."""
    return [n for n in (params.ptf_sand_var, params.ptf_clay_var) if n]


def _ptf_positions(params: ParamsConfig, attribute_names: Sequence[str]) -> dict[str, int]:
    names = ptf_names(params)
    return dict(
        zip(names, _positions(names, attribute_names, "PTF attributes").tolist(), strict=True)
    )


def _ptf_inputs(window: WindowInputs, ptf: Mapping[str, int]) -> dict[str, torch.Tensor] | None:
    return {name: window.attributes_raw[:, j] for name, j in ptf.items()} or None


@dataclass(frozen=True)
class FeatureIndex:
    """Column positions of every network input in the model-input arrays (resolved by name)."""

    kan: torch.Tensor
    lstm_attributes: torch.Tensor | None
    lstm_forcings: torch.Tensor | None
    ptf: dict[str, int]

    @classmethod
    def from_names(
        cls, config: TrainingConfig, attribute_names: Sequence[str], forcing_names: Sequence[str]
    ) -> FeatureIndex:
        """Resolve the configured names; ``KeyError`` names any attribute/forcing not present."""
        lstm = config.cuda_lstm
        return cls(
            kan=_positions(config.kan.input_var_names, attribute_names, "kan.input_var_names"),
            lstm_attributes=None
            if lstm is None
            else _positions(lstm.input_var_names, attribute_names, "cuda_lstm.input_var_names"),
            lstm_forcings=None
            if lstm is None
            else _positions(lstm.forcing_var_names, forcing_names, "cuda_lstm.forcing_var_names"),
            ptf=_ptf_positions(config.params, attribute_names),
        )


@dataclass
class ParameterStep:
    """Physical parameters of one window (``(N,)`` static, ``(D, N)`` daily) and network state."""

    physical: dict[str, torch.Tensor]
    state: LSTMState | None = None
    outputs: NetworkOutputs | None = None  # normalised network outputs (trained sources)


class ParameterSource(Protocol):
    """Produces the physical routing parameters of a window and the next network state."""

    def __call__(self, window: WindowInputs, state: LSTMState | None) -> ParameterStep:
        """Parameters of ``window`` starting from network ``state``."""
        ...


def network_outputs(
    model: RoutingModel,
    window: WindowInputs,
    features: FeatureIndex,
    state: LSTMState | None = None,
    lstm_chunk: int | None = None,
) -> NetworkOutputs:
    """Run the KAN (and the LSTM when the model has one, in checkpointed chunks of
    ``lstm_chunk`` reaches when given) on the window inputs."""
    device = window.attributes.device
    kan_inputs = window.attributes[:, features.kan.to(device)]
    if model.lstm is None or features.lstm_forcings is None or features.lstm_attributes is None:
        return model(kan_inputs)
    forcings = window.forcings[:, :, features.lstm_forcings.to(device)]
    lstm_attributes = window.attributes[:, features.lstm_attributes.to(device)]
    return model(kan_inputs, forcings, lstm_attributes, state, lstm_chunk=lstm_chunk)


class TrainedParameters:
    """Parameters from a :class:`RoutingModel` in whatever mode the caller set (train or eval).

    ``lstm_chunk``: run the LSTM in checkpointed chunks of that many reaches (memory, same values).
    """

    def __init__(
        self, model: RoutingModel, features: FeatureIndex, lstm_chunk: int | None = None
    ) -> None:
        self.model = model
        self.features = features
        self.lstm_chunk = lstm_chunk

    @classmethod
    def on_inputs(
        cls,
        model: RoutingModel,
        config: TrainingConfig,
        attribute_names: Sequence[str],
        forcing_names: Sequence[str],
    ) -> TrainedParameters:
        """The source of ``model`` with features ordered by ``config`` over the inputs' names."""
        return cls(model, FeatureIndex.from_names(config, attribute_names, forcing_names))

    def __call__(self, window: WindowInputs, state: LSTMState | None) -> ParameterStep:
        """Run the networks on the window and map their outputs to physical parameters."""
        outputs = network_outputs(self.model, window, self.features, state, self.lstm_chunk)
        physical = self.model.routing_parameters(
            outputs,
            window.attributes.shape[0],
            ptf_inputs=_ptf_inputs(window, self.features.ptf),
            observed=window.observed_geometry or None,
        )
        return ParameterStep(physical, outputs.state, outputs)


class ConstantParameters:
    """Untrained baseline: every learned parameter at a configured value or its mid-range.

    ``values`` maps parameter name -> physical value; learned parameters without a value take
    the middle of their range (the geometric middle for log-space ranges), i.e. the value a
    freshly initialised network (sigmoid output 0.5) predicts.
    """

    def __init__(
        self,
        config: TrainingConfig,
        values: Mapping[str, float] | None = None,
        attribute_names: Sequence[str] | None = None,
    ) -> None:
        self.params: ParamsConfig = config.params
        self.geometry = config.routing.geometry
        if ptf_names(self.params) and attribute_names is None:
            raise ValueError(
                f"the Cosby PTF needs the raw attributes {ptf_names(self.params)}: "
                "pass attribute_names"
            )
        self.ptf = _ptf_positions(self.params, attribute_names or [])
        values = dict(values or {})
        unknown = sorted(set(values) - set(self.params.parameter_ranges))
        if unknown:
            raise KeyError(f"baseline parameter values for unknown parameters {unknown}")
        self.values: dict[str, float] = {}
        for name in config.learned_parameters:
            low, high = self.params.parameter_ranges[name]
            mid = float(denormalize(torch.tensor(0.5), low, high, self.params.is_log_space(name)))
            self.values[name] = float(values.get(name, mid))
        self.values.update({k: float(v) for k, v in values.items() if k not in self.values})
        self._given = set(values)
        self._learned = list(config.learned_parameters)

    def stated(self) -> dict[str, str]:
        """Every routing parameter this baseline uses and where its value comes from.

        ``{name: "<value> (<source>)"}`` with source ``configured`` (``values``), ``mid-range``
        (the middle of a learned parameter's range), ``default`` (``params.defaults``: not
        learned) or ``PTF``; channel data (observed top width / side slope) replaces the stated
        value wherever the data has it. The evaluation writes this beside the baseline.
        """
        out: dict[str, str] = {}
        for name in self._learned:
            source = "configured" if name in self._given else "mid-range"
            out[name] = f"{self.values[name]:.6g} ({source})"
        for name in routed_parameters(self.geometry):
            if name not in out and name in self.params.defaults:
                out[name] = f"{self.params.defaults[name]:.6g} (default)"
        if self.params.use_leakance and self.ptf:
            out["K_D"] = "Cosby PTF of the reach's sand/clay with K_D_delta above"
        return out

    def _normalized(self, name: str, n_reaches: int, device: torch.device) -> torch.Tensor:
        low, high = self.params.parameter_ranges[name]
        value = self.values[name]
        if self.params.is_log_space(name):
            s = (np.log(value) - np.log(low)) / (np.log(high) - np.log(low))
        else:
            s = (value - low) / (high - low)
        return torch.full((n_reaches,), float(s), dtype=torch.float32, device=device)

    def __call__(self, window: WindowInputs, state: LSTMState | None) -> ParameterStep:
        """The same constant parameters for every window (no network state)."""
        n = window.attributes.shape[0]
        device = window.attributes.device
        static = {name: self._normalized(name, n, device) for name in self.values}
        physical = routing_parameters(
            static,
            {},
            self.params,
            n,
            ptf_inputs=_ptf_inputs(window, self.ptf),
            observed=window.observed_geometry or None,
            geometry=self.geometry,
        )
        return ParameterStep(physical)
