"""Cost of driving the BMI component: hourly ``update`` vs daily ``update_until`` vs batch routing.

Routes the DRB demo's test year three ways with the bundled checkpoint of the BMI tests and prints
wall and CPU seconds (``time.process_time``) of each:

* ``update``: a framework loop setting the inflow and calling ``update()`` every hour;
* ``update_until``: the inflow set once per day, one ``update_until`` per day;
* ``routing pipeline``: the routing pipeline's node (:func:`route_domain`), one chunked rollout.

Needs the demo's ``data_processing`` outputs (``kedro run --pipelines data_processing``)::

    .venv/bin/python benchmarks/bmi_step.py [--inputs data/05_model_input/drb]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "tests" / "bmi" / "assets" / "drb_tiny.pt"


def _timed(label: str, work) -> tuple[str, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return label, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default=str(ROOT / "data" / "05_model_input" / "drb"))
    args = parser.parse_args()

    from ddr_pipeline.bmi import DdrRouting
    from ddr_pipeline.bmi.variables import INFLOW, REACH_ID
    from ddr_pipeline.data.containers import ModelInputs
    from ddr_pipeline.model_store.checkpoints import load_checkpoint
    from ddr_pipeline.pipelines.routing.nodes import route_domain
    from ddr_pipeline.project.datasets import XarrayZarrDataset

    processed = Path(args.inputs)
    inputs = ModelInputs.from_dataset(
        XarrayZarrDataset(filepath=str(processed / "model_inputs.zarr")).load()
    )
    start, end = inputs.periods["test"]
    first, stop = inputs.day_range(start, end)
    config = {
        "model": {"checkpoint": str(CHECKPOINT)},
        "network": {
            "model_inputs": str(processed / "model_inputs.zarr"),
            "normalization_stats": str(processed / "normalization_stats.json"),
            "reaches": str(ROOT / "data" / "01_raw" / "drb" / "reaches.parquet"),
        },
        "time": {"start": start, "end": end},
    }
    folder = Path(tempfile.mkdtemp(prefix="bmi_bench_"))
    (folder / "bmi.yaml").write_text(yaml.safe_dump(config))

    def component() -> DdrRouting:
        bmi = DdrRouting()
        bmi.initialize(str(folder / "bmi.yaml"))
        return bmi

    def hourly() -> None:
        bmi = component()
        columns = inputs.network.index_of(bmi.get_value_ptr(REACH_ID.name))
        for day in range(first, stop):
            for _ in range(24):
                bmi.set_value(INFLOW.name, inputs.lateral_inflow[day, columns])
                bmi.update()

    def daily() -> None:
        bmi = component()
        columns = inputs.network.index_of(bmi.get_value_ptr(REACH_ID.name))
        for day in range(first, stop):
            bmi.set_value(INFLOW.name, inputs.lateral_inflow[day, columns])
            bmi.update_until((day - first + 1) * 86400.0)

    def pipeline() -> None:
        params = {"period": [start, end], "warmup_days": 0, "chunk_days": 73, "device": "cpu"}
        route_domain(load_checkpoint(CHECKPOINT), inputs, params, "bench")

    component()  # imports and JIT caches out of the timings
    rows = [
        _timed("update (hourly)", hourly),
        _timed("update_until (daily)", daily),
        _timed("routing pipeline", pipeline),
    ]
    steps = (stop - first) * 24
    print(
        f"DRB {inputs.network.n_reaches} reaches x {steps} steps ({start}..{end}), "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print("| driver | wall s | CPU s | CPU us / step |")
    print("|---|---|---|---|")
    for label, wall, cpu in rows:
        print(f"| {label} | {wall:.2f} | {cpu:.2f} | {cpu / steps * 1e6:.0f} |")


if __name__ == "__main__":
    main()
