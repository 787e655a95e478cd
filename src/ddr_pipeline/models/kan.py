"""Static per-reach parameters from catchment attributes: Linear -> pykan KAN layers -> sigmoid."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import torch
from torch import nn

from ddr_pipeline.models.rng import isolated_rng

logger = logging.getLogger(__name__)


@contextmanager
def _reproducible_spline_fit() -> Iterator[None]:
    """Make pykan's initial spline fit repeat bitwise across processes.

    pykan fits the initial spline coefficients with a float32 ``torch.linalg.lstsq`` whose LAPACK
    path differs in the last bits between processes (memory alignment), even on one thread. The
    fit is done in float64 instead and rounded to the caller's dtype: float64 round-off (~1e-16)
    does not survive the rounding to float32.
    """
    layer_module = importlib.import_module("kan.KANLayer")
    spline_fit = importlib.import_module("kan.spline").curve2coef

    def curve2coef_float64(x_eval, y_eval, grid, k):
        coef = spline_fit(x_eval.double(), y_eval.double(), grid.double(), k)
        return coef.to(y_eval.dtype)

    with mock.patch.object(layer_module, "curve2coef", curve2coef_float64):
        yield


def _pykan_layer(width: int, grid: int, k: int, seed: int) -> nn.Module:
    """One pykan ``KAN([width, width])`` without files, prints, activation caches or RNG effects."""
    from kan import KAN  # slow import (~3 s, pulls sympy/sklearn): only when a model is built

    with isolated_rng(seed), _reproducible_spline_fit():
        layer = KAN(
            width=[width, width],
            grid=grid,
            k=k,
            seed=seed,
            auto_save=False,
            save_act=False,
            symbolic_enabled=False,
        )
    # The symbolic branch is disabled: freeze it so optimisers and gradient clipping ignore it.
    layer.symbolic_fun.requires_grad_(False)
    return layer


def _init_linear(layer: nn.Linear, *, output: bool, generator: torch.Generator) -> None:
    """DDR init: input Kaiming-normal (relu), output Xavier-normal gain 0.1, zero biases."""
    with torch.no_grad():
        if output:
            nn.init.xavier_normal_(layer.weight, gain=0.1, generator=generator)
        else:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=generator)
        nn.init.zeros_(layer.bias)


def _rebuild(cls: type[nn.Module], spec: dict[str, Any], state: dict[str, Any], training: bool):
    """Unpickle helper: rebuild from the constructor spec, then load the weights."""
    model = cls(**spec)
    device = next(iter(state.values())).device if state else torch.device("cpu")
    model.load_state_dict(state)
    model.train(training)
    return model.to(device)


class StaticParameterKAN(nn.Module):
    """DDR KAN: ``Linear(n_in -> H)`` -> ``L x KAN([H, H])`` -> ``Linear(H -> P)`` -> sigmoid.

    ``forward(x)`` maps z-scored attributes ``(N, n_inputs)`` to ``{name: (N,)}`` in (0, 1).
    Construction is deterministic in ``seed``, writes no files and leaves the global RNGs as they
    were. The module pickles (it is rebuilt from its spec + ``state_dict``; pykan layers do not
    pickle on their own).
    """

    def __init__(
        self,
        n_inputs: int,
        parameter_names: list[str],
        *,
        hidden_size: int = 21,
        num_hidden_layers: int = 2,
        grid: int = 5,
        k: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_inputs < 1 or not parameter_names:
            raise ValueError(
                f"StaticParameterKAN needs >= 1 input and >= 1 parameter, got {n_inputs} inputs "
                f"and parameters {parameter_names}"
            )
        self._spec = {
            "n_inputs": n_inputs,
            "parameter_names": list(parameter_names),
            "hidden_size": hidden_size,
            "num_hidden_layers": num_hidden_layers,
            "grid": grid,
            "k": k,
            "seed": seed,
        }
        self.parameter_names = list(parameter_names)
        generator = torch.Generator().manual_seed(seed)
        with isolated_rng(seed):
            self.input = nn.Linear(n_inputs, hidden_size)
            self.output = nn.Linear(hidden_size, len(parameter_names))
        _init_linear(self.input, output=False, generator=generator)
        _init_linear(self.output, output=True, generator=generator)
        self.layers = nn.ModuleList(
            _pykan_layer(hidden_size, grid, k, seed + i) for i in range(num_hidden_layers)
        )

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(N, n_inputs)`` z-scored attributes -> ``{name: (N,)}`` in (0, 1)."""
        expected = self._spec["n_inputs"]
        if inputs.ndim != 2 or inputs.shape[1] != expected:
            raise ValueError(
                f"StaticParameterKAN expects inputs of shape (N, {expected}), "
                f"got {tuple(inputs.shape)}"
            )
        hidden = self.input(inputs)
        for layer in self.layers:
            hidden = layer(hidden)
            layer.cache_data = None  # pykan keeps the last input alive otherwise
            layer.acts = None
        out = torch.sigmoid(self.output(hidden))
        return {name: out[:, j] for j, name in enumerate(self.parameter_names)}

    def __reduce__(self):
        state = {key: value.detach().clone() for key, value in self.state_dict().items()}
        return (_rebuild, (type(self), dict(self._spec), state, self.training))
