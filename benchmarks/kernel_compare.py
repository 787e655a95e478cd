"""Single-thread CPU time per reach-step of the engine's kernels, against those of an old commit.

Usage:
    .venv/bin/python benchmarks/kernel_compare.py [--reaches 10000] [--steps 480] [--repeats 3]
        [--old 5bbf707] [--threads 1]

Both run in this process on the same inputs (the random network of ``benchmarks/routing.py``,
float32, hourly Q′ and time-varying hourly n, hot start, dense states, output gradient = ones),
alternating, after a warm-up call each; the minimum of ``--repeats`` CPU times
(``time.process_time``) and of the wall times per reach-step is printed, forward and backward.
The old kernels are ``routing/_mc_kernels.py`` and ``routing/_physics.py`` of ``--old`` (``git
show``; packed-parameter contract of that time, before the Cunge options), compiled from a
temporary directory. Not a test: nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from routing import build_inputs  # noqa: E402

from ddr_pipeline.routing import _cpu_engine  # noqa: E402
from ddr_pipeline.routing.muskingum_cunge import _prepare  # noqa: E402


def _best(fn: Callable[[], object], repeats: int, reach_steps: int) -> tuple[float, float]:
    """(CPU ns, wall ns) per reach-step, minimum over ``repeats``."""
    cpu = wall = float("inf")
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return cpu * 1e9 / reach_steps, wall * 1e9 / reach_steps


def current(prob, threads: int) -> tuple[Callable[[], object], Callable[[], object]]:
    """Forward and backward calls of this checkout's engine."""
    net, n = prob.net, prob.net.n_reaches
    qlat, q0 = prob.qlat.numpy(), prob.q0.numpy()
    params = tuple(np.ascontiguousarray(p.numpy()) for p in prob.params.values())
    prow, lim, n_t = prob.steps_per_row(), prob.lim, prob.n_steps
    traj, clamp, rec = np.empty((n_t + 1, n), np.float32), np.zeros(n), []
    none = np.zeros(0, np.int64)

    def fwd() -> None:
        rec[:] = [_cpu_engine.forward(net, qlat, 1, q0, True, params, prow, 3600.0, False, lim,
                                      traj, True, 1, none, np.empty((n_t, 0)), clamp, threads)]  # fmt: skip

    gq = np.empty((n_t, n), np.float32)
    gp = tuple(np.empty((p.shape[0], n), np.float32) for p in params)

    def bwd() -> None:
        _cpu_engine.backward(net, rec[0], np.ones((1, n), np.float32), np.zeros((0, 0)), none,
                             np.zeros(0, np.float32), traj, True, 1, qlat, 1, q0, True, params,
                             prow, 3600.0, False, lim, gq, gp, np.zeros(n))  # fmt: skip

    return fwd, bwd


def old(prob, commit: str, where: Path) -> tuple[Callable[[], object], Callable[[], object]]:
    """Forward and backward calls of the kernels of ``commit`` (packed parameters)."""
    for name, module in (("_physics.py", "oldphys"), ("_mc_kernels.py", "oldmc")):
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:src/ddr_pipeline/routing/{name}"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        src = src.replace("from ddr_pipeline.routing._physics import", "from oldphys import")
        (where / f"{module}.py").write_text(src)
    sys.path.insert(0, str(where))
    oldmc = importlib.import_module("oldmc")
    arrs = prob.net.routing_arrays()
    topo = (arrs["order"], arrs["down"], arrs["up_ptr"], arrs["up_idx"])
    qlat, q0, n, n_t = prob.qlat.numpy(), prob.q0.numpy(), prob.net.n_reaches, prob.n_steps
    params = [np.ascontiguousarray(p.numpy()) for p in prob.params.values()]
    rows = [p.shape[0] for p in params]
    pstart = np.cumsum([0, *rows[:-1]]).astype(np.int64)
    pk, ptv = np.concatenate(params, 0), np.array([r > 1 for r in rows])
    lim = prob.lim[:8].copy()
    out, clamp = np.empty((n_t + 1, n), np.float32), np.zeros(n)
    gq, gpk = np.empty((n_t, n), np.float32), np.zeros_like(pk)

    def fwd() -> None:
        oldmc.mc_forward(qlat, q0, True, pk, pstart, ptv, 3600.0, False, lim, *topo, out, clamp, 1)

    def bwd() -> None:
        oldmc.mc_backward(np.ones((1, n), np.float32), out, qlat, q0, True, pk, pstart, ptv,
                          3600.0, False, lim, *topo, gq, gpk, np.zeros(n), 1)  # fmt: skip

    return fwd, bwd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reaches", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old", default="5bbf707")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    net, qlat, channel, params, _ = build_inputs(args.reaches, args.steps, torch.float32)
    prob = _prepare(net, qlat, channel, params)
    rs = args.reaches * args.steps
    with tempfile.TemporaryDirectory() as tmp:
        engines = {
            "this checkout": current(prob, args.threads),
            args.old: old(prob, args.old, Path(tmp)),
        }
        for fwd, bwd in engines.values():  # warm-up: compilation, first calls
            fwd()
            bwd()
        for name, (fwd, bwd) in engines.items():
            f, b = _best(fwd, args.repeats, rs), _best(bwd, args.repeats, rs)
            print(f"{name}: forward {f[0]:.1f} ns CPU / {f[1]:.1f} ns wall, backward {b[0]:.1f} ns "
                  f"CPU / {b[1]:.1f} ns wall per reach-step")  # fmt: skip
    print(
        f"{args.reaches} reaches x {args.steps} steps, threads {args.threads}, "
        f"load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
