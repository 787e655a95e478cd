"""Daily time-varying parameters from forcings and static attributes (DDR's "CudaLSTM")."""

from __future__ import annotations

import torch
from torch import nn

from ddr_pipeline.models._rng import isolated_rng

LSTMState = tuple[torch.Tensor, torch.Tensor]


class DailyParameterLSTM(nn.Module):
    """``Linear(A+F -> H)`` -> ReLU -> ``LSTM(H, H, layers)`` -> Dropout -> ``Linear(H -> P)`` -> sigmoid.

    Time-major: ``forward(forcings (T, N, F), attributes (N, A), state)`` returns
    ``({name: (T, N)} in (0, 1), (h, c))``. Pass the returned state back in to continue a
    sequence (inference over consecutive windows); ``None`` starts from zeros. The input and
    output layers use DDR's KAN init (output starts near 0.5); the LSTM keeps PyTorch's init.
    """

    def __init__(
        self,
        n_forcings: int,
        n_attributes: int,
        parameter_names: list[str],
        *,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_forcings < 1 or n_attributes < 0 or not parameter_names:
            raise ValueError(
                f"DailyParameterLSTM needs >= 1 forcing and >= 1 parameter, got {n_forcings} "
                f"forcings, {n_attributes} attributes, parameters {parameter_names}"
            )
        self.n_forcings = n_forcings
        self.n_attributes = n_attributes
        self.parameter_names = list(parameter_names)
        generator = torch.Generator().manual_seed(seed)
        with isolated_rng(seed):
            self.input = nn.Linear(n_forcings + n_attributes, hidden_size)
            self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers=num_layers)
            self.output = nn.Linear(hidden_size, len(parameter_names))
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():
            nn.init.kaiming_normal_(self.input.weight, nonlinearity="relu", generator=generator)
            nn.init.xavier_normal_(self.output.weight, gain=0.1, generator=generator)
            nn.init.zeros_(self.input.bias)
            nn.init.zeros_(self.output.bias)

    def _check(self, forcings: torch.Tensor, attributes: torch.Tensor) -> None:
        if forcings.ndim != 3 or forcings.shape[2] != self.n_forcings:
            raise ValueError(
                f"forcings must have shape (T_days, N, {self.n_forcings}), "
                f"got {tuple(forcings.shape)}"
            )
        expected = (forcings.shape[1], self.n_attributes)
        if tuple(attributes.shape) != expected:
            raise ValueError(
                f"attributes must have shape {expected}, got {tuple(attributes.shape)}"
            )

    def forward(
        self,
        forcings: torch.Tensor,
        attributes: torch.Tensor,
        state: LSTMState | None = None,
    ) -> tuple[dict[str, torch.Tensor], LSTMState]:
        """Daily parameters ``{name: (T_days, N)}`` in (0, 1) and the final ``(h, c)`` state."""
        self._check(forcings, attributes)
        static = attributes.unsqueeze(0).expand(forcings.shape[0], -1, -1)
        hidden = torch.relu(self.input(torch.cat([forcings, static], dim=2)))
        hidden, new_state = self.lstm(hidden, state)
        out = torch.sigmoid(self.output(self.dropout(hidden)))
        return {name: out[..., j] for j, name in enumerate(self.parameter_names)}, new_state
