"""One forward simulation: networks -> physical parameters -> Muskingum-Cunge -> daily gauges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ddr_pipeline.config import TrainingConfig
from ddr_pipeline.data.batching import HOURS_PER_DAY, RoutingBatch
from ddr_pipeline.models import NetworkOutputs, RoutingModel
from ddr_pipeline.routing import daily_mean, gather_gauges, muskingum_cunge, repeat_daily

DT_SECONDS = 3600.0


def _positions(wanted: Sequence[str], available: Sequence[str], what: str) -> torch.Tensor:
    index = {name: i for i, name in enumerate(available)}
    unknown = [name for name in wanted if name not in index]
    if unknown:
        raise KeyError(
            f"{what} {unknown} are not in the model inputs (available: {list(available)})"
        )
    return torch.tensor([index[name] for name in wanted], dtype=torch.long)


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
        ptf_names = [n for n in (config.params.ptf_sand_var, config.params.ptf_clay_var) if n]
        ptf = _positions(ptf_names, attribute_names, "PTF attributes")
        return cls(
            kan=_positions(config.kan.input_var_names, attribute_names, "kan.input_var_names"),
            lstm_attributes=None
            if lstm is None
            else _positions(lstm.input_var_names, attribute_names, "cuda_lstm.input_var_names"),
            lstm_forcings=None
            if lstm is None
            else _positions(lstm.forcing_var_names, forcing_names, "cuda_lstm.forcing_var_names"),
            ptf=dict(zip(ptf_names, ptf.tolist(), strict=True)),
        )


@dataclass
class Simulation:
    """Result of :func:`simulate`."""

    daily: torch.Tensor  # (D, G) daily mean discharge at the batch gauges, m3/s
    outputs: NetworkOutputs  # normalised network outputs
    params: dict[str, torch.Tensor]  # physical parameters handed to the routing
    final_state: torch.Tensor  # (N,) discharge at the end of the window


def network_outputs(
    model: RoutingModel, batch: RoutingBatch, features: FeatureIndex
) -> NetworkOutputs:
    """Run the KAN (and the LSTM when present) on the batch inputs."""
    device = batch.attributes.device
    kan_inputs = batch.attributes[:, features.kan.to(device)]
    if model.lstm is None or features.lstm_forcings is None or features.lstm_attributes is None:
        return model(kan_inputs)
    forcings = batch.forcings[:, :, features.lstm_forcings.to(device)]
    lstm_attributes = batch.attributes[:, features.lstm_attributes.to(device)]
    return model(kan_inputs, forcings, lstm_attributes)


def hourly_parameters(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Repeat daily ``(D, N)`` parameters to hourly ``(D*24, N)``; static ``(N,)`` stay."""
    return {
        name: repeat_daily(value, HOURS_PER_DAY) if value.ndim == 2 else value
        for name, value in params.items()
    }


def channel_with_defaults(
    channel: dict[str, torch.Tensor], config: TrainingConfig
) -> dict[str, torch.Tensor]:
    """Fill missing (NaN) Muskingum X with ``params.defaults.x`` (0.3 unless configured)."""
    x_default = config.params.defaults.get("x")
    x = channel["x"]
    if x_default is None or bool(torch.isfinite(x).all()):
        return channel
    return {**channel, "x": torch.where(torch.isfinite(x), x, torch.full_like(x, x_default))}


def simulate(
    model: RoutingModel,
    batch: RoutingBatch,
    features: FeatureIndex,
    config: TrainingConfig,
    initial_state: torch.Tensor | None = None,
) -> Simulation:
    """Route the batch with the model's parameters; daily means at the gauges."""
    outputs = network_outputs(model, batch, features)
    n_reaches = batch.network.n_reaches
    ptf_inputs = {name: batch.attributes_raw[:, j] for name, j in features.ptf.items()}
    params = model.routing_parameters(
        outputs, n_reaches, ptf_inputs=ptf_inputs or None, observed=batch.observed_geometry
    )
    floors = config.params.attribute_minimums
    discharge = muskingum_cunge(
        batch.network,
        batch.lateral_inflow,
        channel=channel_with_defaults(batch.channel, config),
        params=hourly_parameters(params),
        dt=DT_SECONDS,
        initial_state=initial_state,
        leakance=config.params.use_leakance,
        q_min=floors.discharge,
        d_min=floors.depth,
        b_min=floors.bottom_width,
        v_min=floors.velocity,
        s_min=floors.slope,
        **config.routing.engine_kwargs(),
    )
    at_gauges = gather_gauges(discharge, batch.gauge_index)
    return Simulation(
        daily=daily_mean(at_gauges, HOURS_PER_DAY),
        outputs=outputs,
        params=params,
        final_state=discharge[-1],
    )
