"""Two separate processes with the same seed train bitwise-identical weights on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

# Builds the twin, trains the KAN + LSTM config (2 epochs x 3 mini-batches) and prints one
# SHA-256 over the model and optimiser tensors.
TRAIN_AND_HASH = """
import hashlib, sys, tempfile
import torch
sys.path.insert(0, sys.argv[1])
from training_synthetic import TRAIN_PERIOD, full_training_params, make_twin
from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.models import build_models
from ddr_pipeline.training import Trainer

ds, gauges, stats = make_twin()
inputs = ModelInputs.from_dataset(ds)
params = full_training_params()
params["experiment"]["validation_every"] = None
config = load_training_config(params)
with tempfile.TemporaryDirectory() as folder:
    trainer = Trainer(
        config=config, model=build_models(config), inputs=inputs,
        train_gauges=GaugeSet.from_table(gauges, inputs, "train"),
        period=inputs.day_range(*TRAIN_PERIOD), normalization_stats=stats,
        models_dir=folder, progress=False,
    )
    result = trainer.fit()
digest = hashlib.sha256()
for name, tensor in result.model.state_dict().items():
    digest.update(name.encode())
    digest.update(tensor.detach().contiguous().numpy().tobytes())
for slot in trainer.optimizer.state_dict()["state"].values():
    for tensor in slot.values():
        digest.update(tensor.detach().contiguous().numpy().tobytes())
print("HASH", digest.hexdigest())
"""


def _train_in_new_process() -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN_AND_HASH, str(HERE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_train_bitwise_identical_weights() -> None:
    runs = [_train_in_new_process() for _ in range(2)]
    hashes = []
    for run in runs:
        out, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-3000:]
        hashes.append([line for line in out.splitlines() if line.startswith("HASH")][-1])
    assert hashes[0] == hashes[1]
