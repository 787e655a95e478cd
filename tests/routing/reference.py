"""Slow, obviously-correct Muskingum–Cunge reference (tests only): Python loops over steps and reaches,
plain torch ops, gradients by autograd. Written straight from routing-physics.md §3."""

from __future__ import annotations

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork

Q_MIN, D_MIN, B_MIN, V_MIN, V_MAX, S_MIN = 1e-4, 0.01, 0.01, 0.01, 15.0, 1e-4


def _row(p: torch.Tensor, t: int) -> torch.Tensor:
    if p.ndim == 0:
        return p
    return p if p.ndim == 1 else p[t]


def coefficients(qt, n, qs, p, w, z, length, s0, x, dt, v_max=V_MAX, x_mode="data",  # noqa: PLR0913, PLR0917
                 celerity="wide_rectangle"):  # fmt: skip
    s0c = torch.clamp(s0, min=S_MIN)
    depth = (qt * n * (qs + 1) / (p * torch.sqrt(s0c))) ** (3.0 / (5.0 + 3.0 * qs))
    depth = torch.clamp(depth, min=D_MIN)
    bottom = torch.clamp(w - 2 * z * depth, min=B_MIN)
    area = (w + bottom) * depth / 2
    perim = bottom + 2 * depth * torch.sqrt(1 + z**2)
    radius = area / perim
    v = radius ** (2.0 / 3.0) * torch.sqrt(s0c) / n
    vc = torch.clamp(v, V_MIN, v_max)
    if celerity == "exact":
        # Q(h) = A^(5/3) P^(-2/3) sqrt(S0)/n, dA/dh = W, dP/dh = 2 sqrt(1+z^2): c = dQ/dA
        c = vc * (5.0 / 3.0 - 2.0 / 3.0 * radius / w * 2 * torch.sqrt(1 + z**2))
    else:
        c = 5.0 / 3.0 * vc
    if x_mode == "cunge":  # c L (1/2 - X) = Q / (2 W S0)
        x = torch.clamp(0.5 - qt / (2 * w * s0c) / (c * length), 0.0, 0.5)
    k = length / c
    den = 2 * k * (1 - x) + dt
    c1 = (dt - 2 * k * x) / den
    c2 = (dt + 2 * k * x) / den
    c3 = (2 * k * (1 - x) - dt) / den
    c4 = 2 * dt / den
    return c1, c2, c3, c4, depth


def route_reference(
    net: RiverNetwork,
    qlat: torch.Tensor,
    channel: dict,
    params: dict,
    dt: float = 3600.0,
    initial_state: torch.Tensor | None = None,
    leakance: bool = False,
    v_max: float = V_MAX,
    x_mode: str = "data",
    celerity: str = "wide_rectangle",
) -> tuple[torch.Tensor, float]:
    """(T+1, N) states and the volume added by the Q_min floor."""
    n_t, n_r = qlat.shape
    order = net.topological_order.tolist()
    ups = [net.up_idx[net.up_ptr[i] : net.up_ptr[i + 1]].tolist() for i in range(n_r)]
    p_all = {"p": torch.tensor(21.0, dtype=qlat.dtype), **channel, **params}
    if initial_state is None:
        acc = [None] * n_r
        for i in order:
            acc[i] = qlat[0, i] + sum((acc[j] for j in ups[i]), torch.zeros((), dtype=qlat.dtype))
        q0 = torch.clamp(torch.stack(acc), min=Q_MIN)
    else:
        q0 = torch.clamp(initial_state, min=Q_MIN)
    states = [q0]
    clamp_vol = 0.0
    for t in range(n_t):
        qt = states[-1]
        g = {k: _row(v, t) for k, v in p_all.items()}
        c1, c2, c3, c4, depth = coefficients(
            qt, g["n"], g["q_spatial"], g["p"], g["top_width"], g["side_slope"],
            g["length"], g["slope"], g["x"], dt, v_max, x_mode, celerity,
        )  # fmt: skip
        if leakance:
            hbank = torch.clamp(g["top_width"] / (2 * g["side_slope"]), 0.1, 10.0)
            zeta_raw = g["K_D"] * g["top_width"] * g["length"] * (depth - hbank + g["d_gw"])
        new = [None] * n_r
        for i in order:
            zero = torch.zeros((), dtype=qlat.dtype)
            u = sum((qt[j] for j in ups[i]), zero)
            v = sum((new[j] for j in ups[i]), zero)
            zeta = zero
            if leakance:
                f = qlat[t, i] + u
                zr = zeta_raw[i]  # clamp(zr, -f, f); one-sided derivative also when f == 0
                zeta = torch.where(zr > f, f, torch.where(zr < -f, -f, zr))
            y = c1[i] * v + c2[i] * u + c3[i] * qt[i] + c4[i] * (qlat[t, i] - zeta)
            if float(y.detach()) < Q_MIN:
                clamp_vol += (Q_MIN - float(y.detach())) * dt
            new[i] = torch.clamp(y, min=Q_MIN)
        states.append(torch.stack(new))
    return torch.stack(states), clamp_vol


def random_network(n: int, seed: int) -> RiverNetwork:
    """A random dendritic network with shuffled ids (several outlets possible)."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(100, 100 + n)) * 7
    to = np.zeros(n, dtype=np.int64)
    for k in range(1, n):  # reach k drains to an earlier reach or is an outlet
        to[k] = ids[rng.integers(0, k)] if rng.random() > 0.1 else 0
    perm = rng.permutation(n)
    return RiverNetwork.from_ids(ids[perm], to[perm])
