"""A rank that dies ends the 2-rank job with a clear error; the last checkpoint stays intact."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "training"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
from rank_faults import EXIT_CODE, kill_rank_one_in_second_step  # noqa: E402
from training_synthetic import TRAIN_PERIOD, full_training_params, make_twin  # noqa: E402

from ddr_pipeline.config.training import load_training_config  # noqa: E402
from ddr_pipeline.data.containers import GaugeSet, ModelInputs  # noqa: E402
from ddr_pipeline.distributed.launch import DistributedRunError  # noqa: E402
from ddr_pipeline.model_store.checkpoints import checkpoint_path, load_checkpoint  # noqa: E402
from ddr_pipeline.training import NullMonitor  # noqa: E402
from ddr_pipeline.training.parallel import run_training  # noqa: E402
from ddr_pipeline.training.setup import TrainingData, batch_plan  # noqa: E402


@pytest.mark.slow  # one launch of 2 spawned ranks
def test_dead_rank_stops_the_job_and_keeps_the_last_checkpoint(tmp_path):
    ds, gauges, stats = make_twin()
    inputs = ModelInputs.from_dataset(ds)
    train = GaugeSet.from_table(gauges, inputs, "train")
    data = TrainingData(inputs, gauges, train, inputs.day_range(*TRAIN_PERIOD), None)
    params = full_training_params()
    params["experiment"].update(epochs=1, validation_every=None)
    params["monitoring"] = {"models_dir": str(tmp_path), "progress_bar": False}
    params["distributed"] = {"nproc_per_node": 2, "timeout_s": 60}
    config = load_training_config(params)
    with pytest.raises(DistributedRunError) as failure:
        run_training(
            config,
            data,
            stats,
            batch_plan(config, data),
            NullMonitor(),
            on_step=kill_rank_one_in_second_step,
        )
    message = str(failure.value)
    first = checkpoint_path(tmp_path, "full", 1, 0)
    assert f"rank 1 failed first (exit code {EXIT_CODE})" in message
    assert f"the last checkpoint is {first}" in message
    assert load_checkpoint(first).payload["world_size"] == 2
    assert not checkpoint_path(tmp_path, "full", 1, 1).exists()
