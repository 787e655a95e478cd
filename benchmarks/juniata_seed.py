"""One Juniata seed on one core: train (30 steps) + the 15-year test routing, beside Kedro's start-up.

    taskset -c 0 python benchmarks/juniata_seed.py --seed 42 --out benchmarks/results/juniata_seed.json

Times, in one process pinned by the caller to one core (``taskset``; torch and the routing on
one thread): the library imports, Kedro's start-up (bootstrap + session + loading the
``juniata`` environment's config, what every ``kedro run`` pays before its first node), loading
the model inputs, a warm-up compile of the numba kernels (a 2-day routing), training with
``conf/juniata`` (DDR's protocol and parameterisation, lr x3) and routing + scoring the test years. Prerequisite:
``DDR_GEODATASET=juniata kedro run --env juniata --pipelines data_processing``. The 1-minute load
average before and after is recorded: numbers from a busy machine are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402

from ddr_pipeline.config.training import load_training_config  # noqa: E402
from ddr_pipeline.data.containers import GaugeSet, ModelInputs  # noqa: E402
from ddr_pipeline.evaluation import metrics  # noqa: E402
from ddr_pipeline.experiments.selection import train_on, with_overrides  # noqa: E402
from ddr_pipeline.inference.gauges import route_gauges  # noqa: E402

IMPORTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "05_model_input" / "juniata"


def kedro_startup() -> tuple[float, dict]:
    """Seconds to bootstrap the project, open a session and load the juniata parameters."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    started = time.perf_counter()
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env="juniata") as session:
        params = session.load_context().params
    return time.perf_counter() - started, dict(params["training"])


def main(argv: list[str] | None = None) -> None:
    """Time the pieces and print / write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    timings: dict[str, float] = {"imports_s": IMPORTED - STARTED}
    timings["kedro_startup_s"], params = kedro_startup()
    started = time.perf_counter()
    config = load_training_config(with_overrides(params, {"experiment.seed": args.seed}))
    stats_dir = DATA / "normalization_stats.json"
    stats_file = sorted(stats_dir.glob("*/normalization_stats.json"))[-1] if stats_dir.is_dir() else stats_dir
    stats = json.loads(stats_file.read_text())
    gauges_table = pd.read_parquet(DATA / "gauges.parquet")
    with xr.open_zarr(DATA / "model_inputs.zarr", consolidated=False) as ds:
        inputs = ModelInputs.from_dataset(ds)
    gauges = GaugeSet.from_table(gauges_table, inputs, None)
    timings["load_inputs_s"] = time.perf_counter() - started
    from ddr_pipeline.models import build_models

    started = time.perf_counter()
    route_gauges(build_models(config), config, inputs, gauges, (30, 32), warmup_days=0)
    timings["numba_warmup_s"] = time.perf_counter() - started
    started = time.perf_counter()
    model = train_on(config, inputs, gauges_table, inputs.period("train"), stats)
    timings["train_s"] = time.perf_counter() - started
    started = time.perf_counter()
    pred = route_gauges(model, config, inputs, gauges, inputs.period("test"), warmup_days=30)
    table = metrics.metrics_table(pred.simulated, pred.observed, ["g"], ["nse", "kge"])
    timings["test_s"] = time.perf_counter() - started
    timings["train_plus_test_s"] = timings["train_s"] + timings["test_s"]
    result = {
        **timings,
        "seed": args.seed,
        "nse": float(table["nse"].iloc[0]),
        "kge": float(table["kge"].iloc[0]),
        "load_1min_before": load_before,
        "load_1min_after": os.getloadavg()[0],
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "finite": bool(np.isfinite(pred.simulated).all()),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
