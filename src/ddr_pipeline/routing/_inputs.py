"""Input normalisation and validation for the routing functions (clear errors, no silent NaN)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork

_FLOAT_DTYPES = (torch.float32, torch.float64)


def as_tensor(value: object, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Tensor view of ``value`` (tensor, numpy array or number), cast to ``dtype`` if given."""
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, np.ndarray | float | int | list | tuple | np.floating | np.integer):
        t = torch.as_tensor(np.asarray(value, dtype=np.float64))
    else:
        raise TypeError(
            f"{name} must be a torch tensor, a numpy array or a number, got {type(value)}"
        )
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    return t


def lateral_inflow_tensor(
    lateral_inflow: object, net: RiverNetwork, *, allow_negative: bool = False
) -> torch.Tensor:
    """Validate the (T, N) lateral inflow: float32/float64, finite, >= 0."""
    q = as_tensor(lateral_inflow, "lateral_inflow")
    if q.dtype not in _FLOAT_DTYPES:
        q = q.to(torch.get_default_dtype() if q.dtype.is_floating_point else torch.float32)
    if q.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"lateral_inflow must be float32 or float64, got {q.dtype}")
    if q.ndim != 2 or q.shape[1] != net.n_reaches:
        raise ValueError(
            f"lateral_inflow must have shape (T, {net.n_reaches}) (time, reach), got {tuple(q.shape)}"
        )
    if q.shape[0] < 1:
        raise ValueError("lateral_inflow must have at least one time step")
    check_values("lateral_inflow", q, net, lo=None if allow_negative else 0.0)
    return q


def check_values(
    name: str,
    t: torch.Tensor,
    net: RiverNetwork,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
) -> None:
    """Raise ``ValueError`` naming the first reach id (and time row) that is NaN/Inf or out of range."""
    v = t.detach()
    if v.numel() and _in_range(v, lo, hi, lo_open):
        return
    bad = ~torch.isfinite(v)
    if lo is not None:
        bad |= (v <= lo) if lo_open else (v < lo)
    if hi is not None:
        bad |= v > hi
    if not bool(bad.any()):
        return
    flat = int(torch.nonzero(bad.reshape(-1))[0])
    n_r = v.shape[-1]
    row, col = divmod(flat, n_r)
    value = float(v.reshape(-1)[flat])
    where = f"reach id {net.ids[col]}" + (
        f", time step {row}" if v.ndim == 2 and v.shape[0] > 1 else ""
    )
    count = int(bad.sum())
    if not math.isfinite(value):
        problem = f"non-finite value {value}"
    else:
        rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        problem = f"value {value} outside {rng}"
    raise ValueError(f"{name}: {problem} at {where} ({count} bad entries)")


def _in_range(v: torch.Tensor, lo: float | None, hi: float | None, lo_open: bool) -> bool:
    """Fast path: one ``aminmax`` pass, no mask. NaN propagates into min/max, so any NaN/Inf or
    out-of-range value returns False (the caller then locates it)."""
    vmin, vmax = (float(x) for x in torch.aminmax(v))
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        return False
    if lo is not None and (vmin <= lo if lo_open else vmin < lo):
        return False
    return hi is None or vmax <= hi


def per_reach(  # noqa: PLR0913, PLR0917 (internal helper of the routing entry points)
    name: str,
    value: object,
    n_t: int,
    net: RiverNetwork,
    dtype: torch.dtype,
    device: torch.device,
    n_rows: int | None = None,
) -> torch.Tensor:
    """A per-reach input as (1, N) (static), (n_rows, N) (one row per input row, e.g. daily) or
    (T, N) (row t drives step t -> t+1)."""
    t = as_tensor(value, name, dtype)
    if t.device != device:
        t = t.to(device)
    n_r = net.n_reaches
    if t.ndim == 0:
        return t.reshape(1, 1).expand(1, n_r)
    if t.ndim == 1 and t.shape[0] == n_r:
        return t.reshape(1, n_r)
    if t.ndim == 2 and t.shape[1] == n_r and t.shape[0] in (1, n_t, n_rows or n_t):
        return t
    rows = f"({n_t}, {n_r}) (per step)"
    if n_rows is not None and n_rows != n_t:
        rows = f"({n_rows}, {n_r}) (per input row) or " + rows
    raise ValueError(
        f"{name} must be a scalar, shape ({n_r},) (static), {rows}, got {tuple(t.shape)}"
    )
