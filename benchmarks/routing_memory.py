"""Routing memory per reach-step of one training-style forward + backward.

Each variant runs in its own subprocess: build the inputs (daily Q′, daily n and d_gw, static
rest, float32, leakance, 64 observed reaches), record ``ru_maxrss``, route + backward, record
again; the difference divided by reaches × steps is the routing's own memory per reach-step
(the inputs themselves are excluded; an hourly expansion made by the legacy path is included,
as it is part of what that path costs). A warm-up call on 300 reaches compiles first.

Variants: ``legacy`` (hourly repeat of Q′ and of the daily parameters, dense (T+1, N) states,
``daily_mean`` + gauge gather, as training did before), ``lean`` (daily rows, means at the
observed reaches) and ``lean-k<K>`` (plus time checkpointing every K steps; ``lean-kauto`` = √T).

Usage:
    .venv/bin/python benchmarks/routing_memory.py [--reaches 10000] [--days 365] [--variant ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _inputs(n: int, days: int):
    import numpy as np
    import torch

    from ddr_pipeline.network import RiverNetwork

    rng = np.random.default_rng(0)
    parent = np.array([-1] + [int(rng.integers(max(0, k - 40), k)) for k in range(1, n)])
    ids = np.arange(1, n + 1)
    net = RiverNetwork.from_ids(ids, np.where(parent >= 0, ids[np.maximum(parent, 0)], 0))
    g = torch.Generator().manual_seed(0)

    def u(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    qlat = u((days, n), 0.05, 3.0)
    channel = {"length": u(n, 500, 8000), "slope": u(n, 1e-4, 1e-2), "x": torch.full((n,), 0.3)}
    params = {
        "n": u((days, n), 0.02, 0.2).requires_grad_(),
        "d_gw": u((days, n), 0.5, 3.0).requires_grad_(),
        "q_spatial": u(n, 0.2, 0.8).requires_grad_(),
        "top_width": u(n, 5, 100).requires_grad_(),
        "side_slope": u(n, 0.5, 5).requires_grad_(),
        "K_D": u(n, 1e-9, 1e-8).requires_grad_(),
    }
    reaches = np.sort(rng.choice(n, 64, replace=False))
    return net, qlat, channel, params, reaches


def _route(variant: str, net, qlat, channel, params, reaches):  # noqa: PLR0917
    import torch

    from ddr_pipeline.routing import daily_mean, muskingum_cunge, muskingum_cunge_means

    days = qlat.shape[0]
    if variant == "legacy":
        hourly = {k: v.repeat_interleave(24, 0) if v.ndim == 2 else v for k, v in params.items()}
        q = muskingum_cunge(net, qlat.repeat_interleave(24, 0), channel, hourly, leakance=True)
        daily = daily_mean(q[:, torch.as_tensor(reaches)], 24)
    else:
        k = variant.removeprefix("lean").removeprefix("-k") or "1"
        every = math.isqrt(days * 24) if k == "auto" else int(k)
        daily = muskingum_cunge_means(
            net, qlat, channel, params, reaches, substeps=24, checkpoint_every=every, leakance=True
        ).means
    (daily * daily.detach()).mean().backward()


def _child(variant: str, n: int, days: int) -> None:
    import torch

    torch.set_num_threads(1)
    _route(variant, *_inputs(300, 4))  # JIT
    problem = _inputs(n, days)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    c0 = time.process_time()
    _route(variant, *problem)
    cpu = time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    steps = days * 24
    print("RESULT " + json.dumps({
        "variant": variant, "reaches": n, "steps": steps, "cpu_s": cpu,
        "routing_bytes": peak - before, "bytes_per_reach_step": (peak - before) / (n * steps),
        "peak_rss_gib": peak / 2**30,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reaches", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--variant", action="append", help="legacy, lean, lean-k<K>, lean-kauto")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.reaches, args.days)
        return
    print(
        "| variant | reaches × steps | routing bytes / reach-step | fwd+bwd CPU s | peak RSS GiB | load |"
    )
    print("|---|---|---|---|---|---|")
    for variant in args.variant or ["legacy", "lean", "lean-kauto"]:
        load = os.getloadavg()[0]
        cmd = [sys.executable, __file__, "--child", variant, "--reaches", str(args.reaches),
               "--days", str(args.days)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if not lines:
            print(f"| {variant} | error: {proc.stderr.strip().splitlines()[-1:]} |")
            continue
        r = json.loads(lines[-1][7:])
        print(f"| {variant} | {r['reaches']:,} × {r['steps']:,} | {r['bytes_per_reach_step']:.2f} | "
              f"{r['cpu_s']:.1f} | {r['peak_rss_gib']:.2f} | {load:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
