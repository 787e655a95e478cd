"""Network scale benchmark: a synthetic 10^6-reach dendritic network with 3,000 gauges.

Measures (wall time, peak RSS) RiverNetwork construction + topological order, per-gauge upstream
sets, and assembling batches of 64 gauges (union of upstream sets + sub-network); optionally the
DDR adjacency store (``--adjacency``). Results go to stdout and, with ``--json``, to a file.

Usage: .venv/bin/python benchmarks/network_scale.py [--reaches 1000000] [--gauges 3000]
       [--batch 64] [--batches 20] [--adjacency] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "data"))

from generators import dendritic_network  # noqa: E402

from ddr_pipeline.network import RiverNetwork  # noqa: E402


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (GiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(results: dict, name: str, fn: Callable[[], object]) -> object:
    """Run ``fn``, record its wall time and the peak RSS after it, print a line."""
    t0 = time.perf_counter()
    out = fn()
    results[name] = {
        "seconds": round(time.perf_counter() - t0, 3),
        "peak_rss_gib": round(peak_rss_gib(), 3),
    }
    print(
        f"{name:<46s} {results[name]['seconds']:9.3f} s   peak RSS {results[name]['peak_rss_gib']:.2f} GiB"
    )
    return out


def gauge_sets_by_closure(net: RiverNetwork, gauges: np.ndarray) -> list[np.ndarray]:
    """Per-gauge upstream sets with ``RiverNetwork.upstream_closure`` (one call per gauge)."""
    return [net.upstream_closure(g) for g in gauges]


def gauge_sets_by_slices(net: RiverNetwork, gauges: np.ndarray) -> list[np.ndarray]:
    """Per-gauge upstream sets as slices of the DFS post-order (O(set size) per gauge)."""
    position = np.empty(net.n_reaches, np.int64)
    position[net.topological_order] = np.arange(net.n_reaches)
    stop = position[gauges] + 1
    start = stop - net.upstream_count[gauges]
    return [net.topological_order[a:b] for a, b in zip(start, stop, strict=True)]


def assemble_batch_closure(net: RiverNetwork, batch: np.ndarray) -> RiverNetwork:
    """Union of the batch's upstream sets via ``upstream_closure`` + ``subnetwork``."""
    members = net.upstream_closure(batch)
    sub, _ = net.subnetwork(members)
    return sub


def assemble_batch_sets(
    net: RiverNetwork, sets: list[np.ndarray], batch: np.ndarray
) -> RiverNetwork:
    """Union of precomputed per-gauge sets (touches only the batch's reaches) + ``from_ids``."""
    members = np.unique(np.concatenate([sets[k] for k in batch]))
    down = net.downstream_index[members]
    to_ids = np.where(down >= 0, net.ids[np.maximum(down, 0)], 0)
    return RiverNetwork.from_ids(net.ids[members], to_ids)  # ids outside `members` -> outlets


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and return the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reaches", type=int, default=1_000_000)
    parser.add_argument("--basins", type=int, default=2_000)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--size-sigma", type=float, default=2.5, help="basin-size lognormal sigma")
    parser.add_argument("--hack-exponent", type=float, default=0.5, help="path length ~ k^exp")
    parser.add_argument("--gauges", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adjacency", action="store_true", help="also write the adjacency store")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results: dict = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "args": vars(args) | {"json": str(args.json)},
    }

    RiverNetwork.from_ids(np.arange(1, 4), np.array([2, 3, 0]))  # numba JIT (cached) warm-up
    ids, to_ids = timed(
        results,
        "generate synthetic network",
        lambda: dendritic_network(
            args.reaches,
            args.basins,
            args.window,
            args.seed,
            size_sigma=args.size_sigma,
            hack_exponent=args.hack_exponent,
        ),
    )
    net = timed(
        results,
        "RiverNetwork.from_ids (incl. topological order)",
        lambda: RiverNetwork.from_ids(ids, to_ids),
    )
    levels = timed(results, "levels (longest path)", lambda: net.levels)
    rng = np.random.default_rng(args.seed)
    # DDR drops headwater gauges; gauges favour larger basins (p ~ sqrt(upstream reaches))
    candidates = np.flatnonzero(~net.is_headwater)
    weight = np.sqrt(net.upstream_count[candidates].astype(np.float64))
    gauges = np.sort(rng.choice(candidates, args.gauges, replace=False, p=weight / weight.sum()))
    sizes = net.upstream_count[gauges]
    results["network"] = {
        "reaches": net.n_reaches,
        "outlets": int(net.is_outlet.sum()),
        "longest_path": int(levels.max()),
        "gauge_upstream_reaches": {
            "median": float(np.median(sizes)),
            "p90": float(np.percentile(sizes, 90)),
            "max": int(sizes.max()),
            "sum": int(sizes.sum()),
        },
    }
    print(json.dumps(results["network"]))
    closure_sets = timed(
        results,
        f"per-gauge upstream_closure x{args.gauges}",
        lambda: gauge_sets_by_closure(net, gauges),
    )
    sets = timed(
        results,
        f"per-gauge post-order slices x{args.gauges}",
        lambda: gauge_sets_by_slices(net, gauges),
    )
    assert all(np.array_equal(np.sort(a), b) for a, b in zip(sets, closure_sets, strict=True))
    del closure_sets
    batches = [rng.choice(args.gauges, args.batch, replace=False) for _ in range(args.batches)]
    subs = timed(
        results,
        f"{args.batches} batches of {args.batch}: upstream_closure+subnetwork",
        lambda: [assemble_batch_closure(net, gauges[b]) for b in batches],
    )
    timed(
        results,
        f"{args.batches} batches of {args.batch}: union of sets+from_ids",
        lambda: [assemble_batch_sets(net, sets, b) for b in batches],
    )
    results["batch_reaches"] = {
        "median": float(np.median([s.n_reaches for s in subs])),
        "max": int(max(s.n_reaches for s in subs)),
    }
    print(json.dumps({"batch_reaches": results["batch_reaches"]}))
    if args.adjacency:
        from ddr_pipeline.ingest.adjacency import write_adjacency

        reaches = pd.DataFrame({"id": ids, "to_id": to_ids})
        table = pd.DataFrame(
            {
                "STAID": [f"{k:08d}" for k in range(args.gauges)],
                "reach_ids": [[int(net.ids[g])] for g in gauges],
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            timed(
                results,
                "write_adjacency (network + gauge groups)",
                lambda: write_adjacency(Path(tmp) / "adj.zarr", reaches, table, "synthetic"),
            )
    results["peak_rss_gib"] = round(peak_rss_gib(), 3)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
