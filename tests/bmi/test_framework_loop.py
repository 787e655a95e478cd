"""A framework-like loop over the demo's test period reproduces the routing pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bmi.helpers import CHECKPOINT, config_dict, write_config
from ddr_pipeline.bmi import DdrRouting
from ddr_pipeline.bmi.variables import DISCHARGE, INFLOW, REACH_ID
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.model_store.checkpoints import load_checkpoint
from ddr_pipeline.pipelines.routing.nodes import route_domain
from ddr_pipeline.project.datasets import XarrayZarrDataset


def test_hourly_loop_matches_the_routing_pipeline(tmp_path: Path, drb_processed: Path) -> None:
    inputs = ModelInputs.from_dataset(
        XarrayZarrDataset(filepath=str(drb_processed / "model_inputs.zarr")).load()
    )
    start, end = inputs.periods["test"]
    routed = route_domain(
        load_checkpoint(CHECKPOINT),
        inputs,
        {
            "geodataset": "drb",
            "run_name": "bmi-test",
            "period": [start, end],
            "warmup_days": 0,
            "chunk_days": 73,
            "device": "cpu",
        },
        "bmi-test",
    )["discharge"]

    component = DdrRouting()
    component.initialize(str(write_config(tmp_path, config_dict(drb_processed, start, end))))
    reach_ids = component.get_value_ptr(REACH_ID.name)
    columns = inputs.network.index_of(reach_ids)
    first, stop = inputs.day_range(start, end)
    steps_per_day = round(86400 / component.get_time_step())
    discharge = component.get_value_ptr(DISCHARGE.name)
    daily = np.zeros((stop - first, reach_ids.size), dtype=np.float64)
    for day in range(first, stop):  # the framework: set the inflow, step, read the discharge
        for _ in range(steps_per_day):
            component.set_value(INFLOW.name, inputs.lateral_inflow[day, columns])
            component.update()
            daily[day - first] += discharge
    component.finalize()
    daily /= steps_per_day

    expected = routed.sel(reach_id=reach_ids).transpose("time", "reach_id").values
    assert daily.shape == expected.shape == (366, 456)
    np.testing.assert_allclose(daily, expected, rtol=1e-5, atol=1e-5)
