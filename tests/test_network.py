"""RiverNetwork construction, errors, topology, upstream sets and sub-networks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ddr_pipeline.network import RiverNetwork


def _check_topological(net: RiverNetwork) -> None:
    pos = np.empty(net.n_reaches, np.int64)
    pos[net.topological_order] = np.arange(net.n_reaches)
    has = net.downstream_index >= 0
    assert np.all(pos[has] < pos[net.downstream_index[has]])
    assert np.array_equal(np.sort(net.topological_order), np.arange(net.n_reaches))


def test_from_ids_any_order_and_outlet_markers() -> None:
    ids = [50, 10, 30, 20, 40, 60, 70]
    to = [0, 30, 50, 30, 50, None, float("nan")]
    net = RiverNetwork.from_ids(ids, to)
    assert net.n_reaches == 7
    assert net.downstream_index.tolist() == [-1, 2, 0, 2, 0, -1, -1]
    assert net.is_outlet.tolist() == [True, False, False, False, False, True, True]
    _check_topological(net)
    assert net.index_of([30, 70]).tolist() == [2, 6]
    unknown = RiverNetwork.from_ids([1, 2], [999, 1])  # an id not in the set = outlet
    assert unknown.downstream_index.tolist() == [-1, 0]
    nullable = RiverNetwork.from_ids(pd.Series([1, 2, 3]), pd.Series([2, pd.NA, 2], dtype="Int64"))
    assert nullable.downstream_index.tolist() == [1, -1, 1]
    zero_is_id = RiverNetwork.from_ids([0, 1], [-5, 0])  # 0 names a reach when 0 is an id
    assert zero_is_id.downstream_index.tolist() == [-1, 0]


def test_errors_name_the_ids() -> None:
    with pytest.raises(ValueError, match="duplicate reach ids: 5"):
        RiverNetwork.from_ids([5, 6, 5], [0, 0, 0])
    with pytest.raises(ValueError, match="self-loops.*: 7"):
        RiverNetwork.from_ids([6, 7], [0, 7])
    with pytest.raises(ValueError, match="cycles through reach ids: 1, 2, 3"):
        RiverNetwork.from_ids([1, 2, 3, 4], [2, 3, 1, 1])
    with pytest.raises(ValueError, match="to_ids has 1 entries"):
        RiverNetwork.from_ids([1, 2], [0])
    net = RiverNetwork.from_ids([1, 2], [2, 0])
    with pytest.raises(KeyError, match="unknown reach ids: 3, 9"):
        net.index_of([1, 3, 9])
    with pytest.raises(IndexError, match="out of range"):
        net.upstream_closure([5])


def test_upstream_closure_subnetwork_and_levels() -> None:
    # 10, 20 -> 30; 30, 40 -> 50; 60 -> 40
    net = RiverNetwork.from_ids([10, 20, 30, 40, 50, 60], [30, 30, 50, 50, 0, 40])
    idx = net.index_of([30, 40])
    closure = net.upstream_closure(idx)
    assert sorted(net.ids[closure].tolist()) == [10, 20, 30, 40, 60]
    assert net.upstream_count.tolist() == [1, 1, 3, 2, 6, 1]
    assert net.levels.tolist() == [0, 0, 1, 1, 2, 0]
    sub, index_map = net.subnetwork(closure)
    assert np.array_equal(sub.ids, net.ids[index_map])
    assert sub.is_outlet[sub.index_of([30, 40])].all()  # links leaving the subset become outlets
    assert sub.downstream_index[sub.index_of([10])[0]] == sub.index_of([30])[0]
    groups = net.level_groups()
    assert [sorted(net.ids[g].tolist()) for g in groups] == [[10, 20, 60], [30, 40], [50]]


def test_random_large_network_matches_bruteforce_closure() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    parent = np.array([-1] + [int(rng.integers(0, k)) for k in range(1, n)])
    ids = np.arange(1, n + 1) * 3
    to = np.where(parent >= 0, ids[np.maximum(parent, 0)], 0)
    perm = rng.permutation(n)
    net = RiverNetwork.from_ids(ids[perm], to[perm])
    _check_topological(net)
    probe = rng.integers(0, n, 5)
    for i in probe:
        brute = {int(i)}
        frontier = [int(i)]
        while frontier:
            j = frontier.pop()
            for u in np.flatnonzero(net.downstream_index == j):
                brute.add(int(u))
                frontier.append(int(u))
        assert set(net.upstream_closure([i]).tolist()) == brute
        assert net.upstream_count[i] == len(brute)
