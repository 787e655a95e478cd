"""Deterministic grouping of reaches for a shared LSTM sequence (seeded k-means)."""

from __future__ import annotations

import torch

_ITERATIONS = 25
"""Lloyd iterations at most (k-means usually settles in fewer; it stops when labels repeat)."""


def group_reaches(features: torch.Tensor, n_groups: int, *, seed: int = 0) -> torch.Tensor:
    """Labels ``(N,)`` in ``[0, g)`` with ``g <= n_groups``: k-means on ``features (N, D)``.

    Seeded k-means++ initialisation, then Lloyd iterations, all in float64 on the CPU, so the
    labels are a deterministic function of the features (bitwise across processes). Groups
    left empty and duplicate centres are dropped, so there may be fewer than ``n_groups``;
    labels are numbered in order of first appearance. With ``n_groups >= N`` each reach is
    its own group.
    """
    n = features.shape[0]
    if n_groups < 1:
        raise ValueError(f"n_groups must be a positive integer, got {n_groups}")
    if n_groups >= n:
        return torch.arange(n, device=features.device)
    x = features.detach().to("cpu", torch.float64).reshape(n, -1)
    centres = _kmeans_plus_plus(x, n_groups, torch.Generator().manual_seed(seed))
    labels = _nearest(x, centres)
    for _ in range(_ITERATIONS):
        counts = torch.bincount(labels, minlength=centres.shape[0]).unsqueeze(1)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        new = _nearest(x, centres)
        if torch.equal(new, labels):
            break
        labels = new
    order = torch.argsort(first_members(labels, centres.shape[0], empty=n))
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    return rank[labels].to(features.device)


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ centres (fewer when fewer distinct points exist)."""
    chosen = [int(torch.randint(x.shape[0], (1,), generator=generator))]
    distance = ((x - x[chosen[0]]) ** 2).sum(dim=1)
    for _ in range(1, k):
        total = distance.sum()
        if total <= 0:  # every point coincides with a centre
            break
        index = int(torch.multinomial(distance / total, 1, generator=generator))
        chosen.append(index)
        distance = torch.minimum(distance, ((x - x[index]) ** 2).sum(dim=1))
    return x[chosen]


def _nearest(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centre of each row (ties: the lowest index)."""
    distance = (centres**2).sum(dim=1) - 2.0 * x @ centres.T
    return distance.argmin(dim=1)


def first_members(labels: torch.Tensor, n_groups: int, *, empty: int = -1) -> torch.Tensor:
    """Index of the first reach of each group ``(n_groups,)`` (``empty`` for an empty group)."""
    n = labels.shape[0]
    first = torch.full((n_groups,), n, dtype=torch.long, device=labels.device)
    first = first.scatter_reduce(0, labels, torch.arange(n, device=labels.device), reduce="amin")
    return torch.where(first == n, empty, first)
