"""One module holding both networks, so a single ``state_dict`` / MLflow model has everything."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ddr_pipeline.config.training import ParamsConfig, TrainingConfig
from ddr_pipeline.models.kan import StaticParameterKAN
from ddr_pipeline.models.lstm import DailyParameterLSTM, LSTMState
from ddr_pipeline.models.parameters import (
    denormalize_all,
    parameter_summary,
    routing_parameters,
)


@dataclass
class NetworkOutputs:
    """Normalised network outputs: static ``{name: (N,)}``, daily ``{name: (T_days, N)}``."""

    static: dict[str, torch.Tensor]
    daily: dict[str, torch.Tensor]
    state: LSTMState | None


class RoutingModel(nn.Module):
    """KAN (static parameters) + optional LSTM (daily parameters) + parameter mapping."""

    def __init__(
        self,
        kan: StaticParameterKAN,
        lstm: DailyParameterLSTM | None,
        params: ParamsConfig,
        geometry: str = "learned",
    ) -> None:
        super().__init__()
        self.kan = kan
        self.lstm = lstm
        self.params = params
        self.geometry = geometry  # routing.geometry: "ddr" routes no top_width / side_slope

    @property
    def learned_parameters(self) -> list[str]:
        """Names of all learned parameters (KAN then LSTM)."""
        lstm = self.lstm.parameter_names if self.lstm is not None else []
        return [*self.kan.parameter_names, *lstm]

    def forward(
        self,
        kan_inputs: torch.Tensor,
        forcings: torch.Tensor | None = None,
        lstm_attributes: torch.Tensor | None = None,
        state: LSTMState | None = None,
        lstm_chunk: int | None = None,
    ) -> NetworkOutputs:
        """Run the KAN on ``(N, A_kan)`` and, if present, the LSTM on ``(T, N, F)`` + ``(N, A)``
        (in checkpointed chunks of ``lstm_chunk`` reaches when given, see
        :class:`DailyParameterLSTM`)."""
        static = self.kan(kan_inputs)
        if self.lstm is None:
            return NetworkOutputs(static=static, daily={}, state=None)
        if forcings is None or lstm_attributes is None:
            raise ValueError("this model has an LSTM: forcings and lstm_attributes are required")
        daily, new_state = self.lstm(forcings, lstm_attributes, state, chunk_reaches=lstm_chunk)
        return NetworkOutputs(static=static, daily=daily, state=new_state)

    def routing_parameters(
        self,
        outputs: NetworkOutputs,
        n_reaches: int,
        ptf_inputs: Mapping[str, torch.Tensor] | None = None,
        observed: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Physical parameters for ``muskingum_cunge`` (see ``routing_parameters``)."""
        return routing_parameters(
            outputs.static,
            outputs.daily,
            self.params,
            n_reaches,
            ptf_inputs=ptf_inputs,
            observed=observed,
            geometry=self.geometry,
        )

    def describe(self, outputs: NetworkOutputs) -> dict[str, float]:
        """min/median/max of each learned parameter in physical units (``n_median``, ...)."""
        physical = denormalize_all({**outputs.static, **outputs.daily}, self.params)
        return parameter_summary(physical)


def build_models(
    cfg: TrainingConfig,
    n_kan_inputs: int | None = None,
    n_lstm_inputs: int | None = None,
) -> RoutingModel:
    """Build the KAN and LSTM of ``cfg`` (seeded by ``experiment.seed``, global RNGs untouched).

    ``n_kan_inputs`` / ``n_lstm_inputs`` (static attributes of each network) default to the
    lengths of the configured name lists and must agree with them when given.
    """
    n_kan = len(cfg.kan.input_var_names)
    if n_kan_inputs is not None and n_kan_inputs != n_kan:
        raise ValueError(f"n_kan_inputs={n_kan_inputs} but kan.input_var_names has {n_kan} names")
    seed = cfg.experiment.seed
    kan = StaticParameterKAN(
        n_inputs=n_kan,
        parameter_names=cfg.kan.learnable_parameters,
        hidden_size=cfg.kan.hidden_size,
        num_hidden_layers=cfg.kan.num_hidden_layers,
        grid=cfg.kan.grid,
        k=cfg.kan.k,
        seed=seed,
    )
    lstm = None
    if cfg.cuda_lstm is not None:
        n_lstm = len(cfg.cuda_lstm.input_var_names)
        if n_lstm_inputs is not None and n_lstm_inputs != n_lstm:
            raise ValueError(
                f"n_lstm_inputs={n_lstm_inputs} but cuda_lstm.input_var_names has {n_lstm} names"
            )
        lstm = DailyParameterLSTM(
            n_forcings=len(cfg.cuda_lstm.forcing_var_names),
            n_attributes=n_lstm,
            parameter_names=cfg.cuda_lstm.learnable_parameters,
            hidden_size=cfg.cuda_lstm.hidden_size,
            num_layers=cfg.cuda_lstm.num_layers,
            dropout=cfg.cuda_lstm.dropout,
            seed=seed + 1000,
            sequence_groups=cfg.cuda_lstm.sequence_groups,
        )
    return RoutingModel(kan, lstm, cfg.params, cfg.routing.geometry)
