"""Expected scaling of the task-parallel CPU engine on many cores, from its block graph.

Usage:
    .venv/bin/python benchmarks/scaling_model.py [--steps 8760] [--fwd-ns 60] [--bwd-ns 120]
        [--cores 1,2,4,8,16,32,64] [--json benchmarks/results/scaling_model.json]

For each network (the DRB's 456 reaches; the 50k-reach synthetic training batch of
``benchmarks/training_step.py``: 16 basins, 64 gauges; a 346k-reach MERIT-sized synthetic network
from ``tests/data/generators.py``: 700 basins, heavy-tailed sizes, Hack's-law path lengths; and
the same 346k reaches as one basin) and each core count P, the engine's own layout
(``_cpu_engine.layout``) cuts the network (``_cpu_plan``) and the window into chunks; a task's
work is its reaches × chunk steps × the measured cost per reach-step (``--fwd-ns``/``--bwd-ns``,
one core). The model reports the total work W, the critical path C of the task graph (the
longest chain of dependent tasks: C ≥ what any number of cores can do) and a simulation of the
engine's greedy scheduler on P workers, where each task also holds the interpreter lock for the
measured per-task bookkeeping (scheduler + kernel dispatch, serial across workers). Speed-up =
W / simulated time, forward and adjoint summed. Not a measurement of many cores: no such machine
here; memory bandwidth and cache effects are not modelled.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "data"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from generators import dendritic_network  # noqa: E402
from training_step import _network  # noqa: E402

from ddr_pipeline.network import RiverNetwork  # noqa: E402
from ddr_pipeline.routing._cpu_engine import layout  # noqa: E402
from ddr_pipeline.routing._cpu_plan import CpuPlan, build_cpu_plan  # noqa: E402
from ddr_pipeline.routing._scheduler import run_tasks  # noqa: E402


def networks() -> dict[str, RiverNetwork]:
    """The modelled networks by name."""
    out = {}
    for name, n in (("DRB (456)", 456), ("50k batch (16 basins)", 50_000)):
        ids, to, _, _ = _network(n, 0)
        out[name] = RiverNetwork.from_ids(ids, to)
    ids, to = dendritic_network(346_000, 700, 4, 0, size_sigma=2.5, hack_exponent=0.5)
    out["346k MERIT-sized (700 basins)"] = RiverNetwork.from_ids(ids, to)
    ids, to = dendritic_network(346_000, 1, 4, 0, hack_exponent=0.5)
    out["346k, one basin"] = RiverNetwork.from_ids(ids, to)
    return out


def dispatch_s(calls: int = 2000) -> float:
    """Seconds to dispatch one ``forward_task`` call (arguments of a real call, no steps)."""
    import torch
    from routing import build_inputs

    import ddr_pipeline.routing._cpu_engine as engine
    from ddr_pipeline.routing import muskingum_cunge

    captured = []
    real = engine.forward_task
    engine.forward_task = lambda *a: (captured.append(a), real(*a))
    try:
        net, qlat, channel, params, _ = build_inputs(300, 24, torch.float32)
        muskingum_cunge(net, qlat, channel, params, threads=1)
    finally:
        engine.forward_task = real
    args = list(captured[0])
    args[2] = args[1]  # t1 = t0: dispatch only
    t0 = time.perf_counter()
    for _ in range(calls):
        real(*args)
    return (time.perf_counter() - t0) / calls


def task_overhead_s(threads: int = 2, n_tasks: int = 20_000) -> float:
    """Measured bookkeeping per task of ``run_tasks`` (empty tasks) plus one kernel dispatch:
    the time a task holds the interpreter lock."""
    ptr = np.zeros(2, np.int64)
    t0 = time.perf_counter()
    run_tasks(lambda b, q: None, 1, n_tasks, ptr, ptr, np.zeros(0, np.int64), threads, False)
    return (time.perf_counter() - t0) / n_tasks + dispatch_s()


def critical_path(plan: CpuPlan, work: np.ndarray, n_chunks: int) -> float:
    """Longest chain of the forward task graph: cp[b, q] = w_b + max(cp[b, q−1], cp[a, q] for the
    upstream blocks a), vectorised over q (running maximum)."""
    q = np.arange(n_chunks)
    cp = np.zeros((plan.n_blocks, n_chunks))
    for b in range(plan.n_blocks):  # blocks in topological order (a task model, not a kernel)
        ups = plan.up_blocks[plan.up_ptr[b] : plan.up_ptr[b + 1]]
        m = cp[ups].max(axis=0) if ups.size else np.zeros(n_chunks)
        cp[b] = work[b] * (q + 1) + np.maximum.accumulate(m - q * work[b])
    return float(cp.max())


def simulate(plan: CpuPlan, work: np.ndarray, n_chunks: int, workers: int, lock_s: float) -> float:
    """Makespan of the greedy scheduler (ready task with the smallest (chunk, block) first) on
    ``workers`` workers; each task first holds the interpreter lock for ``lock_s``."""
    nb = plan.n_blocks
    waiting = np.diff(plan.up_ptr)[None, :] + (np.arange(n_chunks) > 0)[:, None]
    ready = [(0.0, 0, b) for b in range(nb) if waiting[0, b] == 0]
    ready_at = {}
    free = [0.0] * workers
    lock_free = 0.0
    done: list[tuple[float, int, int]] = []
    pending = sorted(ready, key=lambda x: (x[1], x[2]))
    heap = [(q, b) for _, q, b in pending]
    heapq.heapify(heap)
    t_end = 0.0
    while heap or done:
        if heap and (not done or min(free) <= done[0][0]):
            q, b = heapq.heappop(heap)
            w = heapq.heappop(free)
            start = max(w, ready_at.get((q, b), 0.0), lock_free) + lock_s
            lock_free = start
            finish = start + work[b]
            heapq.heappush(free, finish)
            heapq.heappush(done, (finish, q, b))
            continue
        finish, q, b = heapq.heappop(done)
        t_end = max(t_end, finish)
        nxt = [(q, int(s)) for s in plan.down_blocks[plan.down_ptr[b] : plan.down_ptr[b + 1]]]
        if q + 1 < n_chunks:
            nxt.append((q + 1, b))
        for qq, bb in nxt:
            waiting[qq, bb] -= 1
            if waiting[qq, bb] == 0:
                ready_at[(qq, bb)] = finish
                heapq.heappush(heap, (qq, bb))
    return t_end


def model(net: RiverNetwork, cores: int, steps: int, ns: float, lock_s: float) -> dict:
    """W, C and the simulated time of one sweep (cost ``ns`` per reach-step) on ``cores``."""
    lay = layout(net.n_reaches, steps, cores)
    arrs = net.routing_arrays()
    plan = build_cpu_plan(arrs["down"], arrs["up_ptr"], arrs["up_idx"], lay.blocks)
    n_chunks = -(-steps // lay.chunk)
    work = np.diff(plan.bstart) * min(lay.chunk, steps) * ns * 1e-9
    total = float(work.sum() * n_chunks)
    span = critical_path(plan, work, n_chunks)
    sim = simulate(plan, work, n_chunks, lay.threads, lock_s) if lay.threads > 1 else total
    return {"blocks": lay.blocks, "tasks": lay.blocks * n_chunks, "work_s": total,
            "critical_path_s": span, "simulated_s": sim}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8760)
    parser.add_argument("--fwd-ns", type=float, default=60.0)
    parser.add_argument("--bwd-ns", type=float, default=120.0)
    parser.add_argument("--cores", default="1,2,4,8,16,32,64")
    parser.add_argument(
        "--json", default=str(ROOT / "benchmarks" / "results" / "scaling_model.json")
    )
    args = parser.parse_args()
    lock_s = task_overhead_s()
    rows = []
    print(f"per-task lock time (measured): {lock_s * 1e6:.1f} us")
    print("| network | cores | blocks | tasks | W / C (parallelism) | modelled speed-up |")
    for name, net in networks().items():
        base = None
        for p in (int(c) for c in args.cores.split(",")):
            f = model(net, p, args.steps, args.fwd_ns, lock_s)
            b = model(net, p, args.steps, args.bwd_ns, lock_s)
            sim = f["simulated_s"] + b["simulated_s"]
            base = base if base is not None else f["work_s"] + b["work_s"]
            par = (f["work_s"] + b["work_s"]) / (f["critical_path_s"] + b["critical_path_s"])
            rows.append({"network": name, "reaches": net.n_reaches, "cores": p, "fwd": f,
                         "bwd": b, "parallelism": par, "speedup": base / sim})  # fmt: skip
            print(f"| {name} | {p} | {f['blocks']} | {f['tasks']} | {par:.1f} | {base / sim:.2f} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"args": vars(args), "lock_s": lock_s, "rows": rows},
                                          indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
