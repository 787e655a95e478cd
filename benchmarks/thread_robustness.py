"""Thread robustness of the CPU engine: 1, 2 and cores+1 threads beside a competing busy process.

Usage:
    .venv/bin/python benchmarks/thread_robustness.py [--reaches 10000] [--steps 2000]
        [--call dense|means] [--threads 1,2,3] [--busy 1] [--repeats 3]
        [--out benchmarks/results/thread_robustness]

``--busy B`` starts B processes that spin on a core each for the whole run (0 = none). Every
repeat routes once per thread count, alternating (the same process, so the thread counts share
the machine's state); the rule checked is the engine's promise: with any thread count the median
forward + backward wall time is at most 10 % above the median on one thread. ``--call dense``
routes like ``benchmarks/routing.py`` (hourly Q′ and n as (T, N) arrays, the dense (T+1, N)
trajectory, loss = its sum); ``--call means`` like training (daily Q′ and n, ``substeps=24``, the
daily means at 64 reaches and the final state, every state stored). The thread count is the
routing call's ``threads`` argument; ``NUMBA_NUM_THREADS`` (its cap) is raised to cores + 1 when
unset. Results: ``<out>.json`` and ``<out>.md``. Not a test: nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CORES = os.cpu_count() or 1
os.environ.setdefault("NUMBA_NUM_THREADS", str(CORES + 1))

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from routing import build_inputs  # noqa: E402

from ddr_pipeline.routing import muskingum_cunge, muskingum_cunge_means  # noqa: E402
from ddr_pipeline.routing._cpu_engine import layout  # noqa: E402


def make_call(n: int, t: int, call: str):
    """A function ``route(threads, grad)`` for the chosen call style."""
    net, qlat, channel, params, _ = build_inputs(n, t, torch.float32)
    if call == "dense":

        def route(threads: int, grad: bool) -> None:
            q = {"qlat": qlat.clone().requires_grad_(grad)}
            muskingum_cunge(
                net, q["qlat"], channel, params, threads=threads
            ).sum().backward() if grad else muskingum_cunge(
                net, qlat, channel, params, threads=threads
            )

        return route
    days = t // 24
    qd = qlat[::24][:days].contiguous()
    pd = {**params, "n": params["n"][::24][:days].contiguous()}
    obs = np.linspace(0, n - 1, 64).astype(np.int64)

    def route_means(threads: int, grad: bool) -> None:
        q = qd.clone().requires_grad_(grad)
        m = muskingum_cunge_means(net, q, channel, pd, obs, substeps=24, threads=threads)
        if grad:
            (m.means.sum() + m.final_state.sum()).backward()

    return route_means


def measure(route, thread_counts: list[int], repeats: int) -> dict[int, dict[str, list[float]]]:
    """Wall seconds of forward and forward + backward per thread count, alternating (and the
    process's CPU seconds of forward + backward, all threads)."""
    times = {th: {"fwd": [], "fwd_bwd": [], "fwd_bwd_cpu": []} for th in thread_counts}
    for _ in range(repeats):
        for th in thread_counts:
            with torch.no_grad():
                t0 = time.perf_counter()
                route(th, False)
                times[th]["fwd"].append(time.perf_counter() - t0)
            t0, c0 = time.perf_counter(), time.process_time()
            route(th, True)
            times[th]["fwd_bwd"].append(time.perf_counter() - t0)
            times[th]["fwd_bwd_cpu"].append(time.process_time() - c0)
    return times


def _busy(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def _row(th: int, t: dict[str, list[float]], base: dict[str, list[float]], lay) -> dict:
    med = {k: statistics.median(v) for k, v in t.items()}
    ratio = med["fwd_bwd"] / statistics.median(base["fwd_bwd"])
    return {"threads": th, "blocks": lay.blocks, "fwd_median_s": med["fwd"],
            "fwd_min_s": min(t["fwd"]), "fwd_bwd_median_s": med["fwd_bwd"],
            "fwd_bwd_min_s": min(t["fwd_bwd"]), "fwd_bwd_cpu_median_s": med["fwd_bwd_cpu"],
            "vs_1_thread": ratio,
            "rule_ok": ratio <= 1.10, "all_s": t}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reaches", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--call", choices=("dense", "means"), default="dense")
    parser.add_argument("--threads", default=f"1,2,{CORES + 1}")
    parser.add_argument("--busy", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "thread_robustness"))
    args = parser.parse_args()
    counts = sorted({int(x) for x in args.threads.split(",")} | {1})
    route = make_call(args.reaches, args.steps, args.call)
    small = make_call(300, 48, args.call)
    for th in counts:  # compile / load the kernels outside the timing
        small(th, True)
    load_before = os.getloadavg()
    procs = _busy(args.busy)
    try:
        time.sleep(1.0 if procs else 0.0)
        times = measure(route, counts, args.repeats)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    per_step = args.call == "dense"
    rows = [_row(th, times[th], times[1], layout(args.reaches, args.steps, th, per_step))
            for th in counts]  # fmt: skip
    result = {
        "machine": platform.processor() or platform.machine(), "cores": CORES,
        "reaches": args.reaches, "steps": args.steps, "call": args.call, "busy": args.busy,
        "repeats": args.repeats, "load_before": load_before, "load_after": os.getloadavg(),
        "numba_num_threads": os.environ["NUMBA_NUM_THREADS"], "rows": rows,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=1))
    Path(f"{args.out}.md").write_text(_table(result))
    print(_table(result))


def _table(res: dict) -> str:
    head = (f"{res['reaches']} reaches × {res['steps']} steps, call {res['call']}, {res['busy']} "
            f"busy process(es), {res['cores']} cores, load {res['load_before'][0]:.2f} → "
            f"{res['load_after'][0]:.2f}\n\n| threads | blocks | fwd s (median / min) | "
            "fwd+bwd s (median / min) | fwd+bwd CPU s | vs 1 thread | rule ≤ 1.10 |\n"
            "|---|---|---|---|---|---|---|\n")  # fmt: skip
    lines = [
        f"| {r['threads']} | {r['blocks']} | {r['fwd_median_s']:.2f} / {r['fwd_min_s']:.2f} | "
        f"{r['fwd_bwd_median_s']:.2f} / {r['fwd_bwd_min_s']:.2f} | "
        f"{r['fwd_bwd_cpu_median_s']:.2f} | {r['vs_1_thread']:.2f} | "
        f"{'ok' if r['rule_ok'] else 'VIOLATED'} |"
        for r in res["rows"]
    ]
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
