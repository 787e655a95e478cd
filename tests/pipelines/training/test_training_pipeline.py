"""The training pipeline: nodes over the synthetic twin with SequentialRunner; config errors."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from training_synthetic import full_training_params, make_twin

from ddr_pipeline.config.training import ConfigError
from ddr_pipeline.model_store.checkpoints import load_checkpoint
from ddr_pipeline.pipelines.training import create_pipeline
from ddr_pipeline.pipelines.training.nodes import resolve_training_config
from pipelines.evaluation.synthetic import KeptMemoryDataset


@pytest.fixture
def params(tmp_path):
    params = full_training_params()
    params["experiment"]["epochs"] = 1
    params["monitoring"] = {
        "models_dir": str(tmp_path / "models"),
        "validation_warmup_days": 5,
        "progress_bar": False,
    }
    return params


def test_pipeline_runs_with_sequential_runner(params, tmp_path):
    ds, gauges, stats = make_twin()
    catalog = DataCatalog(
        {
            "drb.model_inputs": MemoryDataset(ds, copy_mode="assign"),
            "drb.model_gauges": MemoryDataset(gauges),
            "drb.normalization_stats": MemoryDataset(stats),
            "params:training": MemoryDataset(params),
            "training.history": KeptMemoryDataset(),  # also read by the loss-figure node
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    history = catalog["training.history"].load()
    assert len(history) == 3 and set(history["status"]) == {"ok"}
    assert np.isfinite(history["loss"]).all()
    summary = catalog["training.summary"].load()
    assert summary["mini_batches"] == 3 and summary["run_name"] == "full"
    scores = catalog["training.test_scores"].load()
    assert set(scores["split"]) == {"train", "validation"} and len(scores) == 22
    metrics = catalog["training.test_metrics"].load()
    assert metrics["test_all_gauges"]["value"] == 22.0
    assert np.isfinite(metrics["test_validation_nse_median"]["value"])
    loss_figure = catalog["training.plot_loss_curve"].load()
    assert loss_figure.axes[0].get_ylabel() == "MSE loss ((m³/s)²)"
    final = tmp_path / "models" / "full" / "saved_models" / "ddr_full_epoch_1_mb_2.pt"
    loaded = load_checkpoint(final)
    assert loaded.epoch == 1 and loaded.payload["epoch_complete"]


def test_config_errors_are_clear(params):
    params["experiment"]["batch_size"] = 0
    with pytest.raises(ConfigError, match=r"training\.experiment\.batch_size"):
        resolve_training_config(params, "drb")
    params["experiment"]["batch_size"] = 2
    params["geodataset"] = "merit"
    with pytest.raises(ValueError, match="reads the 'drb' model inputs"):
        resolve_training_config(params, "drb")
    params["geodataset"] = "drb"
    params["monitoring"]["validation_period"] = ["2000-05-01", "2000-04-01"]
    with pytest.raises(ConfigError, match="validation_period"):
        resolve_training_config(params, "drb")
