"""Data-parallel training throughput: gauge-days per second on 1 vs N ranks (DRB demo).

Usage (after ``kedro run --pipelines data_processing``):
    .venv/bin/python benchmarks/distributed_training.py [--ranks 1,2] [--steps 6]
        [--batch-size 16] [--rho 180] [--out benchmarks/results/distributed_training]

Every case trains the first ``--steps`` mini-batches of the same batch plan (the demo's
``conf/base`` training parameters, dropout kept) with one thread per rank (torch and routing);
the 1-rank case also runs with 2 threads in one process for comparison. The first mini-batch
(numba JIT / cache load, first-call costs) is excluded; throughput is the sum over the other
steps of ``gauges x window days`` divided by the sum of their step times (the slowest rank's).
``uptime`` is recorded before and after each case: on a shared machine the numbers are only as
good as the load. Not a test: nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402

from ddr_pipeline.config.training import load_training_config  # noqa: E402
from ddr_pipeline.distributed.launch import limit_threads  # noqa: E402
from ddr_pipeline.training import NullMonitor  # noqa: E402
from ddr_pipeline.training.parallel import run_training  # noqa: E402
from ddr_pipeline.training.setup import batch_plan, prepare_training_data  # noqa: E402

MODEL_INPUT = ROOT / "data" / "05_model_input" / "drb"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def training_params() -> dict:
    """The demo's ``params:training`` (conf/base) resolved by Kedro's config loader."""
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(str(ROOT / "conf"), base_env="base", default_run_env="base")
    return loader["parameters"]["training"]


def uptime() -> str:
    """The load averages line of ``uptime``."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def run_case(ranks: int, threads: int, args: argparse.Namespace, data, stats) -> dict:
    """Train ``args.steps`` mini-batches on ``ranks`` ranks; return the measured row."""
    params = training_params()
    params["experiment"].update(
        epochs=1,
        batch_size=args.batch_size,
        rho=args.rho,
        checkpoint_every=10_000,
        validation_every=None,
        device="cpu",
    )
    params["monitoring"].update(
        models_dir=tempfile.mkdtemp(prefix="ddr_bench_"), progress_bar=False, log_checkpoints=False
    )
    params["distributed"].update(nproc_per_node=ranks, threads_per_rank=threads)
    params["run_name"] = f"bench-{ranks}x{threads}"
    config = load_training_config(params)
    plan = batch_plan(config, data)
    if ranks == 1:
        limit_threads(threads)
    load_before = uptime()
    started = time.perf_counter()
    result = run_training(config, data, stats, plan, NullMonitor(), max_steps=args.steps)
    wall = time.perf_counter() - started
    history = result.history.iloc[1:]  # first step: JIT / first-call costs
    gauge_days = float((plan["n_gauges"].iloc[1 : len(result.history)] * args.rho).sum())
    return {
        "ranks": ranks,
        "threads_per_rank": threads,
        "steps_timed": int(len(history)),
        "gauge_days_per_s": gauge_days / float(history["seconds"].sum()),
        "mean_step_s": float(history["seconds"].mean()),
        "rank_step_s": {
            c: float(history[c].mean()) for c in history.columns if c.startswith("seconds_rank")
        },
        "wall_s_with_launch": wall,
        "uptime_before": load_before,
        "uptime_after": uptime(),
    }


def main() -> None:
    """Run the cases and write ``<out>.json`` and ``<out>.md``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rho", type=int, default=180)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/distributed_training"))
    args = parser.parse_args()
    config = load_training_config(training_params())
    inputs = xr.open_zarr(MODEL_INPUT / "model_inputs.zarr", consolidated=False).load()
    gauges = pd.read_parquet(MODEL_INPUT / "gauges.parquet")
    (stats_file,) = (MODEL_INPUT / "normalization_stats.json").glob("*/normalization_stats.json")
    stats = json.loads(stats_file.read_text())
    data = prepare_training_data(inputs, gauges, config)
    cases = [(int(r), 1) for r in args.ranks.split(",")] + [(1, 2)]
    rows = []
    for ranks, threads in cases:
        row = run_case(ranks, threads, args, data, stats)
        print(json.dumps(row))
        rows.append(row)
    base = rows[0]["gauge_days_per_s"]
    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nproc": os.cpu_count(),
        "batch_size": args.batch_size,
        "rho": args.rho,
        "steps": args.steps,
    }
    out = Path(args.out)
    write_atomic(out.with_suffix(".json"), json.dumps({"machine": machine, "rows": rows}, indent=2))
    lines = [
        "| ranks x threads | gauge-days/s | speed-up | mean step s | per-rank step s | load before -> after |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        per_rank = ", ".join(f"{v:.2f}" for v in row["rank_step_s"].values()) or "-"
        load = (
            row["uptime_before"].split("load average:")[-1],
            row["uptime_after"].split("load average:")[-1],
        )
        lines.append(
            f"| {row['ranks']} x {row['threads_per_rank']} | {row['gauge_days_per_s']:.0f} | "
            f"{row['gauge_days_per_s'] / base:.2f} | {row['mean_step_s']:.2f} | {per_rank} | "
            f"{load[0].strip()} -> {load[1].strip()} |"
        )
    write_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
