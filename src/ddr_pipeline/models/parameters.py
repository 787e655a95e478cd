"""Map network outputs in (0, 1) to the physical parameters of the Muskingum-Cunge step."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ddr_pipeline.config.training import ParamsConfig
from ddr_pipeline.parameter_registry import (
    LAKE_PARAMETERS,
    OBSERVABLE_PARAMETERS,
    ROUTING_KEYS,
    routed_parameters,
)

#: log10 of 1 in/h in m/s: converts Cosby et al. (1984) Ks to SI.
LOG10_INCH_PER_HOUR = math.log10(7.056e-6)
#: Riverbed thickness b (m) in K_D = Ks / b.
RIVERBED_THICKNESS_M = 1.0


def denormalize(
    normalized: torch.Tensor, low: float, high: float, log_space: bool = False
) -> torch.Tensor:
    """``s`` in (0, 1) -> ``lo + s (hi - lo)`` or, in log space, ``exp(ln lo + s (ln hi - ln lo))``."""
    if not low < high:
        raise ValueError(f"denormalize needs low < high, got [{low}, {high}]")
    if not log_space:
        return low + normalized * (high - low)
    if low <= 0:
        raise ValueError(f"log-space denormalisation needs a positive range, got [{low}, {high}]")
    log_low, log_high = math.log(low), math.log(high)
    return torch.exp(log_low + normalized * (log_high - log_low))


def denormalize_all(
    normalized: Mapping[str, torch.Tensor], params: ParamsConfig
) -> dict[str, torch.Tensor]:
    """Denormalise every entry of ``normalized`` with its configured range and space."""
    physical = {}
    for name, values in normalized.items():
        if name not in params.parameter_ranges:
            raise KeyError(f"no parameter range configured for {name!r}")
        low, high = params.parameter_ranges[name]
        physical[name] = denormalize(values, low, high, params.is_log_space(name))
    return physical


def cosby_log10_ks(sand_percent: torch.Tensor, clay_percent: torch.Tensor) -> torch.Tensor:
    """Cosby et al. (1984) saturated hydraulic conductivity, log10 of m/s, from sand/clay %."""
    return -0.60 + 0.0126 * sand_percent - 0.0064 * clay_percent + LOG10_INCH_PER_HOUR


def riverbed_conductance(k_d_delta: torch.Tensor, log10_ks: torch.Tensor | float) -> torch.Tensor:
    """``K_D = 10^(log10 Ks + delta) / b`` (1/s), with riverbed thickness b = 1 m."""
    return torch.pow(10.0, log10_ks + k_d_delta) / RIVERBED_THICKNESS_M


def _constant(value: float, n_reaches: int, like: torch.Tensor | None) -> torch.Tensor:
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    device = like.device if like is not None else None
    return torch.full((n_reaches,), float(value), dtype=dtype, device=device)


def _log10_ks(
    params: ParamsConfig, ptf_inputs: Mapping[str, torch.Tensor] | None
) -> torch.Tensor | float:
    if params.ptf_sand_var is None:
        return params.prior_log10_ks
    missing = [
        name
        for name in (params.ptf_sand_var, params.ptf_clay_var)
        if ptf_inputs is None or name not in ptf_inputs
    ]
    if missing:
        raise KeyError(f"PTF attributes {missing} (raw sand/clay %) were not provided")
    return cosby_log10_ks(ptf_inputs[params.ptf_sand_var], ptf_inputs[params.ptf_clay_var])


def _apply_observed(
    physical: dict[str, torch.Tensor],
    params: ParamsConfig,
    observed: Mapping[str, torch.Tensor] | None,
) -> None:
    """Replace learned values by observed channel data where the observation is finite."""
    for name in params.observed_geometry:
        column = OBSERVABLE_PARAMETERS[name]
        if observed is None or name not in observed:
            raise KeyError(
                f"observed geometry for {name!r} (channel column {column!r}) was not provided"
            )
        values = observed[name].to(physical[name])
        physical[name] = torch.where(torch.isfinite(values), values, physical[name])


def routing_parameters(
    static: Mapping[str, torch.Tensor],
    daily: Mapping[str, torch.Tensor],
    params: ParamsConfig,
    n_reaches: int,
    *,
    ptf_inputs: Mapping[str, torch.Tensor] | None = None,
    observed: Mapping[str, torch.Tensor] | None = None,
    geometry: str = "learned",
) -> dict[str, torch.Tensor]:
    """Physical ``params`` for ``muskingum_cunge`` from normalised network outputs.

    ``static``: ``{name: (N,)}`` (KAN); ``daily``: ``{name: (T_days, N)}`` (LSTM), both in (0, 1).
    Parameters not learned take ``params.defaults`` as constant ``(N,)`` tensors. Returns keys
    ``n, q_spatial, top_width, side_slope, p`` and, with ``use_leakance``, ``K_D`` (from
    ``K_D_delta`` and the Cosby PTF or the prior Ks) and ``d_gw``. Daily entries stay
    ``(T_days, N)``: the caller repeats them to the routing step. Learned lake parameters
    (:data:`~ddr_pipeline.parameter_registry.LAKE_PARAMETERS`) come back under their own names,
    per reach; the rollout reads them at the lake reaches. ``ptf_inputs`` holds the raw
    sand/clay % columns named in the config; ``observed`` maps parameter name -> ``(N,)`` channel
    data (NaN = not observed), used where finite. With ``geometry="ddr"`` (``routing.geometry``)
    ``top_width`` and ``side_slope`` are derived by the routing step and not returned.
    """
    overlap = sorted(set(static) & set(daily))
    if overlap:
        raise ValueError(f"parameters {overlap} are both static and daily")
    physical = denormalize_all({**static, **daily}, params)
    for name, values in physical.items():
        if values.shape[-1] != n_reaches:
            raise ValueError(
                f"parameter {name!r} has shape {tuple(values.shape)}, last dim must be "
                f"n_reaches={n_reaches}"
            )
    like = next(iter(physical.values()), None)
    needed = routed_parameters(geometry, params.use_leakance)
    for name in needed:
        if name not in physical:
            if name not in params.defaults:
                raise KeyError(f"parameter {name!r} is neither learned nor in params.defaults")
            physical[name] = _constant(params.defaults[name], n_reaches, like)
    _apply_observed(physical, params, observed)
    result = {key: physical[name] for name, key in ROUTING_KEYS.items() if name in needed}
    result.update({name: physical[name] for name in LAKE_PARAMETERS if name in physical})
    if params.use_leakance:
        result["K_D"] = riverbed_conductance(physical["K_D_delta"], _log10_ks(params, ptf_inputs))
        result["d_gw"] = physical["d_gw"]
    return result


def parameter_summary(physical: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``{"<name>_min"|"_median"|"_max": value}`` over all reaches (and days) of each parameter."""
    summary = {}
    for name, values in physical.items():
        flat = values.detach().reshape(-1).float()
        if flat.numel() == 0:
            continue
        summary[f"{name}_min"] = float(flat.min())
        summary[f"{name}_median"] = float(flat.median())
        summary[f"{name}_max"] = float(flat.max())
    return summary
