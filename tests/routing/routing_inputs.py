"""Random routing inputs shared by the routing tests (a plain module: ``conftest`` is ambiguous
when several test folders with a conftest.py are collected together)."""

from __future__ import annotations

import torch

F64 = torch.float64


def make_inputs(
    n: int,
    t: int,
    seed: int,
    *,
    time_varying: bool = False,
    clamps: bool = False,
    dtype: torch.dtype = F64,
) -> tuple[torch.Tensor, dict, dict]:
    """Random lateral inflow, channel and parameters. ``clamps`` makes every clamp fire somewhere:
    zero inflow spells (Q_min, depth, velocity floors), narrow deep-sided channels (bottom width),
    steep slopes below the floor (slope), large K_D (ζ clamp)."""
    g = torch.Generator().manual_seed(seed)

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=dtype)

    qlat = u(t, n, lo=0.5, hi=3.0)
    nt = (t, n) if time_varying else (n,)
    channel = {
        "length": u(n, lo=500.0, hi=8000.0),
        "slope": u(n, lo=2e-4, hi=0.01),
        "x": u(n, lo=0.05, hi=0.45),
    }
    params = {
        "n": u(*nt, lo=0.02, hi=0.2),
        "q_spatial": u(n, lo=0.1, hi=0.9),
        "top_width": u(n, lo=5.0, hi=60.0),
        "side_slope": u(n, lo=0.5, hi=4.0),
        "K_D": u(n, lo=1e-9, hi=1e-8),
        "d_gw": u(*nt, lo=0.5, hi=3.0),
        "p": u(n, lo=15.0, hi=30.0),
    }
    if clamps:
        qlat[t // 3 :, : max(1, n // 3)] = 0.0
        channel["slope"][::4] = 1e-5
        channel["length"][::2] = 50.0  # C3 < 0: zero inflow drives y below Q_min
        params["top_width"][::3] = 1.0
        params["side_slope"][::3] = 40.0
        params["K_D"][1::2] = 1e-4
    return qlat, channel, params
