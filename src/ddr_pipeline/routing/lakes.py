"""NWM level-pool lakes and reservoirs in the routing engine (docs/routing.md, *Level-pool lakes
and reservoirs*).

A lake routes at one reach of the network (its outlet reach): that reach's state Q is the lake's
outflow, its inflow at step t is I_t = Σ_up Q_t + Q′ (I_{t+1} likewise), and the lake carries a
second state, the water elevation H (m, float64). ``muskingum_cunge(..., lakes=LevelPool(...))``
routes it with NWM's level-pool physics (``_levelpool``) instead of Muskingum–Cunge; the result's
``lakes`` field (:class:`LakeResult`) holds the elevation trajectory and the lake volumes. A lake
may also lose water out of the network (``withdrawal``: water supply, diversion), taken from its
storage and throttled to 0 at the orifice crest (the dead pool).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing._inputs import as_tensor
from ddr_pipeline.routing._levelpool import KM2, SUBSTEPS_MAX, discharges

#: Parameter names, in the kernels' order; NWM LAKEPARM: LkArea (km²), LkMxE (m), WeirE (m),
#: WeirC, WeirL (m), Dam_Length (m), OrificeE (m), OrificeC, OrificeA (m²); then the withdrawal
#: W (m³/s, not NWM's: water taken out of the network from the pool, W·r(H) with r ramping from
#: 0 at OrificeE to 1 at OrificeE + ``_levelpool.WITHDRAWAL_RAMP_M``; optional in ``LevelPool.params``).
LAKE_PARAMS = (
    "area_km2",
    "max_elevation",
    "weir_elevation",
    "weir_coefficient",
    "weir_length",
    "dam_length",
    "orifice_elevation",
    "orifice_coefficient",
    "orifice_area",
    "withdrawal",
)
#: Parameters ``LevelPool.params`` may omit, and the value they then take (0: no withdrawal,
#: the results of a lake without it bitwise).
LAKE_PARAM_DEFAULTS = {"withdrawal": 0.0}
SCHEMES = ("conservative", "nwm")
_NON_NEGATIVE = ("weir_coefficient", "weir_length", "dam_length", "orifice_coefficient",
                 "orifice_area", "withdrawal")  # fmt: skip


@dataclass(frozen=True)
class LevelPool:
    """Level-pool lakes of one routing call.

    Attributes:
        reaches: (L,) user column indices of the lake (outlet) reaches, unique.
        params: each name of :data:`LAKE_PARAMS` -> (L,) tensor (or a scalar for all lakes);
            may require grad. Elevations share one datum per lake. ``withdrawal`` (m³/s ≥ 0)
            may be omitted (:data:`LAKE_PARAM_DEFAULTS`: 0).
        elevation: (L,) water elevation H at the start of the call (m); may require grad.
            Computed in float64 whatever its dtype (an elevation of a few hundred metres in
            float32 would lose the changes of a step).
        scheme: ``"conservative"`` (exact RK3 fractions, outflow = the step-mean outflow implied
            by the storage change: mass closes per step) or ``"nwm"`` (NWM's
            ``LEVELPOOL_PHYSICS`` literally, for parity with t-route/WRF-Hydro).
        substeps: sub-steps per routing step (1 … ``SUBSTEPS_MAX``): exactly this many RK3
            sub-steps with ``"nwm"``; the minimum with ``"conservative"``, which takes more RK3
            sub-steps where the lake is stiff, and this many backward-Euler sub-steps where it
            would need more than ``SUBSTEPS_MAX`` (``_levelpool.substep_count``).
    """

    reaches: np.ndarray
    params: Mapping[str, torch.Tensor]
    elevation: torch.Tensor
    scheme: str = "conservative"
    substeps: int = 1


@dataclass(frozen=True)
class LakeResult:
    """The lakes' side of a routing result.

    Attributes:
        reaches: (L,) user column indices of the lake reaches.
        elevation: (T+1, L) float64 water elevation H (m), row 0 = the initial elevation;
            differentiable.
        inflow: (T, L) step-mean inflow (I_t + I_{t+1})/2 (m³/s, float64, not differentiable).
        outflow: (T, L) outflow of each step (m³/s) as the lake physics produced it (before any
            nudging; float64, not differentiable): the discharge handed downstream (without the
            withdrawal). The reach's state Q_{t+1} holds it in the storage dtype.
        area_m2: (L,) lake area (m², float64, not differentiable).
        dt: the routing step (s).
        withdrawal: (T, L) water withdrawn out of the network in each step (m³/s, the step's
            withdrawn volume / dt; float64, not differentiable; 0 without withdrawal).
    """

    reaches: np.ndarray
    elevation: torch.Tensor
    inflow: torch.Tensor
    outflow: torch.Tensor
    area_m2: torch.Tensor
    dt: float
    withdrawal: torch.Tensor

    @property
    def final_elevation(self) -> torch.Tensor:
        """(L,) elevation at the end of the call (differentiable): the next call's start."""
        return self.elevation[-1]

    def storage_change(self) -> torch.Tensor:
        """(T, L) storage change A·(H_{t+1} − H_t) of each step (m³)."""
        h = self.elevation.detach()
        return self.area_m2 * (h[1:] - h[:-1])

    def net_inflow_volume(self) -> torch.Tensor:
        """(T, L) (inflow − outflow − withdrawal)·dt of each step (m³): equals
        :meth:`storage_change` with the conservative scheme (up to rounding)."""
        return (self.inflow - self.outflow - self.withdrawal) * self.dt

    def withdrawn_volume(self) -> torch.Tensor:
        """(T, L) volume withdrawn out of the network in each step (m³)."""
        return self.withdrawal * self.dt


@dataclass(frozen=True)
class LakeArrays:
    """Validated lakes of one call, as the kernels take them.

    Attributes:
        reaches: (L,) user indices.
        lake_of: (N,) lake index of each topological position (−1: channel).
        params: (L, N_PAR) float64 tensor in :data:`LAKE_PARAMS` order (differentiable).
        elevation: (L,) float64 tensor (differentiable).
        nwm: NWM's literal scheme.
        substeps: (minimum) RK3 sub-steps per routing step.
    """

    reaches: np.ndarray
    lake_of: np.ndarray
    params: torch.Tensor
    elevation: torch.Tensor
    nwm: bool
    substeps: int

    @property
    def n_lakes(self) -> int:
        return int(self.reaches.size)


def _where(lakes: np.ndarray, net: RiverNetwork, j: int) -> str:
    return f"lake {j} (reach index {int(lakes[j])}, id {net.ids[int(lakes[j])]})"


def _check_reaches(reaches: object, net: RiverNetwork) -> np.ndarray:
    idx = np.asarray(reaches)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"lakes.reaches must be a non-empty 1-D integer array, got {reaches!r}")
    idx = idx.astype(np.int64)
    bad = np.flatnonzero((idx < 0) | (idx >= net.n_reaches))
    if bad.size:
        raise IndexError(
            f"lakes.reaches: lake {int(bad[0])} has reach index {int(idx[bad[0]])} outside "
            f"[0, {net.n_reaches})"
        )
    uniq, first, counts = np.unique(idx, return_index=True, return_counts=True)
    if np.any(counts > 1):
        r = int(uniq[counts > 1][0])
        dup = np.flatnonzero(idx == r)
        raise ValueError(
            f"lakes.reaches: reach index {r} (id {net.ids[r]}) holds lakes {dup.tolist()}: one "
            "lake per reach"
        )
    return idx


def _lake_tensor(name: str, value: object, n_l: int, device: torch.device) -> torch.Tensor:
    t = as_tensor(value, f"lakes.{name}").to(device=device, dtype=torch.float64)
    if t.ndim == 0:
        return t.expand(n_l)
    if t.shape != (n_l,):
        raise ValueError(f"lakes.{name} must be a scalar or shape ({n_l},), got {tuple(t.shape)}")
    return t


def _first_bad(mask: torch.Tensor) -> int | None:
    bad = torch.nonzero(mask.reshape(-1))
    return int(bad[0]) if bad.numel() else None


def _check_params(vals: dict[str, torch.Tensor], idx: np.ndarray, net: RiverNetwork) -> None:
    for name, t in vals.items():
        j = _first_bad(~torch.isfinite(t.detach()))
        if j is not None:
            raise ValueError(
                f"lakes.{name}: non-finite value {float(t[j])} at {_where(idx, net, j)}"
            )
    rules = [("area_km2", vals["area_km2"] <= 0, "must be > 0")]
    rules += [(n, vals[n] < 0, "must be >= 0") for n in _NON_NEGATIVE]
    rules.append(("orifice_elevation", vals["orifice_elevation"] > vals["max_elevation"],
                  "is above max_elevation"))  # fmt: skip
    for name, mask, what in rules:
        j = _first_bad(mask.detach())
        if j is not None:
            raise ValueError(
                f"lakes.{name} {what}: {float(vals[name][j])} at {_where(idx, net, j)}"
            )


def prepare_lakes(lakes: LevelPool, net: RiverNetwork, device: torch.device) -> LakeArrays:
    """Validate ``lakes`` against ``net``; clear errors name the lake, its reach and the value."""
    if not isinstance(lakes, LevelPool):
        raise TypeError(f"lakes must be a LevelPool, got {type(lakes)}")
    if lakes.scheme not in SCHEMES:
        raise ValueError(f"lakes.scheme must be one of {list(SCHEMES)}, got {lakes.scheme!r}")
    n = lakes.substeps
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= SUBSTEPS_MAX:
        raise ValueError(f"lakes.substeps must be an integer in [1, {SUBSTEPS_MAX}], got {n!r}")
    idx = _check_reaches(lakes.reaches, net)
    given = {**LAKE_PARAM_DEFAULTS, **lakes.params}
    missing = [k for k in LAKE_PARAMS if k not in given]
    unknown = sorted(set(given) - set(LAKE_PARAMS))
    if missing or unknown:
        raise KeyError(f"lakes.params: missing {missing}, unknown {unknown} (need {LAKE_PARAMS})")
    vals = {k: _lake_tensor(k, given[k], idx.size, device) for k in LAKE_PARAMS}
    _check_params(vals, idx, net)
    elev = _lake_tensor("elevation", lakes.elevation, idx.size, device)
    j = _first_bad(~torch.isfinite(elev.detach()))
    if j is not None:
        raise ValueError(
            f"lakes.elevation: non-finite value {float(elev[j])} at {_where(idx, net, j)}"
        )
    position = np.empty(net.n_reaches, np.int64)
    position[net.routing_arrays()["order"]] = np.arange(net.n_reaches)
    lake_of = np.full(net.n_reaches, -1, np.int64)
    lake_of[position[idx]] = np.arange(idx.size)
    params = torch.stack([vals[k] for k in LAKE_PARAMS], dim=1)
    return LakeArrays(idx, lake_of, params, elev, lakes.scheme == "nwm", int(n))


def area_m2(arrays: LakeArrays) -> torch.Tensor:
    """(L,) lake areas in m² (detached)."""
    return arrays.params[:, 0].detach() * KM2


#: Bisection steps of :func:`elevation_for_outflow`: 2^-200 of any bracket is below float64's ulp.
BISECTIONS = 200


def _parameter_rows(params: Mapping[str, np.ndarray]) -> np.ndarray:
    """(L, 10) float64 parameters in :data:`LAKE_PARAMS` order (defaults where absent)."""
    n_l = np.asarray(params[LAKE_PARAMS[0]]).size
    return np.ascontiguousarray(np.stack([
        np.broadcast_to(np.asarray(params.get(name, LAKE_PARAM_DEFAULTS.get(name)), np.float64),
                        (n_l,))
        for name in LAKE_PARAMS
    ], axis=1))  # fmt: skip


def outflow_at(elevation: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
    """(L,) level-pool outflow (m³/s) of each lake at its water ``elevation`` (m): the engine's
    own discharge (orifice + weir + spill, spill at the same level). ``params``: each name of
    :data:`LAKE_PARAMS` -> (L,) values (``withdrawal`` may be absent; it does not flow out)."""
    return discharges(np.ascontiguousarray(elevation, np.float64), _parameter_rows(params))


def _upper_bracket(
    target: np.ndarray, params: Mapping[str, np.ndarray], ids: np.ndarray
) -> np.ndarray:
    """An elevation per lake whose outflow is ≥ ``target``: max_elevation + 1 m, doubled above
    the max elevation until the spill passes the target (a lake whose outlets pass nothing
    raises, naming it)."""
    top = np.asarray(params["max_elevation"], np.float64)
    above = np.ones_like(top)
    for _ in range(64):
        short = outflow_at(top + above, params) < target
        if not short.any():
            return top + above
        above = np.where(short, 2.0 * above, above)
    j = int(np.flatnonzero(short)[0])
    raise ValueError(f"lake {ids[j]}: no elevation passes the outflow {target[j]} m³/s")


def elevation_for_outflow(
    outflow: np.ndarray, params: Mapping[str, np.ndarray], ids: np.ndarray | None = None
) -> np.ndarray:
    """(L,) water elevation (m) at which each lake's level-pool outflow is ``outflow`` (m³/s):
    a starting level from an observed or modelled outflow (e.g. NWM's CHRTOUT at the outlet).

    The outflow is monotone in H (strictly above the orifice crest): bisection on
    [orifice_elevation, an elevation passing the target] to float64 resolution, vectorised over
    lakes. A lake whose outflow is 0 starts at its orifice elevation (nothing leaves it below
    that). Errors name the lake by ``ids`` (default: its position).
    """
    target = np.asarray(outflow, np.float64)
    ids = np.arange(target.size) if ids is None else np.asarray(ids)
    if not np.isfinite(target).all() or (target < 0).any():
        j = int(np.flatnonzero(~(np.isfinite(target) & (target >= 0)))[0])
        raise ValueError(f"lake {ids[j]}: outflow must be finite and >= 0, got {target[j]}")
    crest = np.asarray(params["orifice_elevation"], np.float64)
    lo, hi = crest.copy(), _upper_bracket(target, params, ids)
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        low = outflow_at(mid, params) < target
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    return np.where(target > 0.0, hi, crest)
