"""What level-pool lakes cost the routing engine: the same network with 0, L and 10·L lakes.

Usage:
    .venv/bin/python benchmarks/lakes.py [--reaches 5000] [--hours 720] [--lakes 48]
        [--repeats 5] [--out benchmarks/results/lakes.json]

One thread (``DDR_ROUTING_THREADS=1``), float32 channel inputs on a random dendritic network
(``benchmarks/routing.py``'s builder); the lakes are the reaches with the most upstream reaches
(no NYC-style withdrawal, NWM-default outlets, a 1 km² pool each). Times the memory-lean call
training uses (``muskingum_cunge_means`` at 50 gauges: forward, then forward + backward) after a
warm-up call, best of ``--repeats``; CPU time of the process. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from routing import build_inputs  # noqa: E402

from ddr_pipeline.routing import muskingum_cunge_means  # noqa: E402
from ddr_pipeline.routing.lakes import LevelPool  # noqa: E402


def lakes_on(net, count: int) -> LevelPool | None:
    """``count`` lakes at the reaches with the largest upstream areas (by reach count)."""
    if count == 0:
        return None
    sizes = np.array([len(net.upstream_closure([i])) for i in range(net.n_reaches)])
    reaches = np.sort(np.argsort(-sizes, kind="stable")[:count])
    full = lambda v: torch.full((count,), v, dtype=torch.float64)  # noqa: E731
    params = {
        "area_km2": full(1.0), "max_elevation": full(110.0), "weir_elevation": full(105.0),
        "weir_coefficient": full(0.4), "weir_length": full(10.0), "dam_length": full(10.0),
        "orifice_elevation": full(95.0), "orifice_coefficient": full(0.1),
        "orifice_area": full(1.0),
    }  # fmt: skip
    return LevelPool(reaches=reaches, params=params, elevation=full(104.0))


def timed(fn, repeats: int) -> float:
    """Best CPU time (s) of ``fn`` over ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def run_case(net, qlat, channel, params, obs, lakes, repeats: int) -> dict[str, float]:  # noqa: PLR0917
    """Forward and forward + backward CPU times of one configuration."""
    def forward() -> torch.Tensor:
        return muskingum_cunge_means(net, qlat, channel, params, obs, lakes=lakes).means

    def backward() -> None:
        q = qlat.clone().requires_grad_(True)
        muskingum_cunge_means(net, q, channel, params, obs, lakes=lakes).means.sum().backward()

    forward(), backward()  # compile / first-call costs
    return {"forward_s": timed(forward, repeats), "forward_backward_s": timed(backward, repeats)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reaches", type=int, default=5000)
    parser.add_argument("--hours", type=int, default=720)
    parser.add_argument("--lakes", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/lakes.json")
    args = parser.parse_args(argv)
    os.environ["DDR_ROUTING_THREADS"] = "1"
    torch.set_num_threads(1)
    net, qlat, channel, params, kind = build_inputs(args.reaches, args.hours, torch.float32)
    obs = np.linspace(0, args.reaches - 1, 50).astype(np.int64)
    rows = []
    for count in (0, args.lakes, 10 * args.lakes):
        result = run_case(net, qlat, channel, params, obs, lakes_on(net, count), args.repeats)
        rows.append({"lakes": count, **result})
        print(f"{count:5d} lakes: forward {result['forward_s']:.3f} s, "
              f"forward+backward {result['forward_backward_s']:.3f} s")  # fmt: skip
    report = {
        "network": kind, "reaches": args.reaches, "hours": args.hours, "threads": 1,
        "machine": platform.processor() or platform.machine(), "load": os.getloadavg(),
        "rows": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
