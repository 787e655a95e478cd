"""Two gloo ranks against one on the DRB demo (Kedro env ``test``: 1 epoch x 3 mini-batches).

One ``kedro run`` of ``data_processing``, one of ``training`` with
``training.distributed.nproc_per_node=2``; everything else reuses its outputs in this process.
Tolerance of the 2-rank run against the 1-rank run on the same batch plan: the per-rank loss
terms and gradients are summed in another order, so weights agree to ``WEIGHT_ATOL`` (not
bitwise) and the test-period median NSE to 3 decimals (docs/distributed.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro_sessions import kedro_session_factory

from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.inference.gauges import PredictionSettings
from ddr_pipeline.inference.reaches import route_reaches
from ddr_pipeline.model_store.checkpoints import load_checkpoint, read_checkpoint
from ddr_pipeline.project.datasets import XarrayZarrDataset
from ddr_pipeline.training import NullMonitor
from ddr_pipeline.training.parallel import train_in_process
from ddr_pipeline.training.setup import batch_plan, prepare_training_data, score_period

pytestmark = pytest.mark.slow  # two launches of 2 spawned ranks + a Kedro data_processing run

RUN = "ddr-drb-training"
#: Largest absolute weight difference of a 2-rank against a 1-rank run after 3 Adam steps.
WEIGHT_ATOL = 1e-4
#: 2-rank vs 1-rank routing: the networks run on other reach counts (float32 GEMM blocking).
ROUTING_RTOL = 1e-5


@pytest.fixture(scope="module")
def drb(project_root: Path, tmp_path_factory):
    """Run data_processing, then training on 2 ranks; return the folder and loaded inputs."""
    tmp = tmp_path_factory.mktemp("drb_ranks")
    two_ranks = {"training": {"distributed": {"nproc_per_node": 2}}}
    with (
        pytest.MonkeyPatch.context() as patch,
        kedro_session_factory(project_root, tmp, patch) as create,
    ):
        with create("drb_data") as session:
            session.run(pipeline_names=["data_processing"])
        while mlflow.active_run() is not None:  # its run stays active after session.run
            mlflow.end_run()
        with create("drb_two_ranks", two_ranks) as session:
            params = session.load_context().params["training"]
            session.run(pipeline_names=["training"])
    model_input = tmp / "data" / "model_input" / "drb"
    (stats_file,) = (model_input / "normalization_stats.json").glob("*/normalization_stats.json")
    inputs = XarrayZarrDataset(filepath=str(model_input / "model_inputs.zarr")).load()
    gauges = pd.read_parquet(model_input / "gauges.parquet")
    params["distributed"]["nproc_per_node"] = 1
    params["monitoring"]["models_dir"] = str(tmp / "one_rank")
    config = load_training_config(params)
    return {
        "tmp": tmp,
        "config": config,
        "data": prepare_training_data(inputs, gauges, config),
        "stats": json.loads(stats_file.read_text()),
    }


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_two_ranks_log_one_mlflow_run_and_rank_zero_writes_checkpoints(drb):
    tmp = drb["tmp"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("drb_two_ranks").experiment_id])
    assert run.data.params["world_size"] == "2"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 3
    assert {"seconds_rank0", "seconds_rank1", "val_nse_median"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "training")}
    assert "training/batch_plan.parquet" in artifacts
    saved = tmp / "data" / "models" / RUN / "saved_models"
    names = sorted(p.name for p in saved.iterdir())
    assert names == [f"ddr_{RUN}_epoch_1_mb_1.pt", f"ddr_{RUN}_epoch_1_mb_2.pt"]
    for path in saved.iterdir():
        payload = read_checkpoint(path)
        assert payload["world_size"] == 2 and len(payload["rng_state"]["ranks"]) == 2


def test_batch_plan_is_the_same_for_one_seed(drb):
    written = pd.read_parquet(
        drb["tmp"] / "data" / "reporting" / RUN / "training" / "batch_plan.parquet"
    )
    again = batch_plan(drb["config"], drb["data"])
    pd.testing.assert_frame_equal(written, again, check_dtype=False)
    history = pd.read_parquet(
        drb["tmp"] / "data" / "reporting" / RUN / "training" / "history.parquet"
    )
    assert history["gauges"].tolist() == written["gauges"].tolist()


def test_two_ranks_match_one_rank_and_resume_in_one_rank(drb):
    tmp, config, data, stats = drb["tmp"], drb["config"], drb["data"], drb["stats"]
    plan = batch_plan(config, data)
    one = train_in_process(config, data, stats, plan, NullMonitor())
    two = load_checkpoint(tmp / "data" / "models" / RUN / "trained_model.pt")
    assert _max_difference(one.model.state_dict(), two.model.state_dict()) < WEIGHT_ATOL
    nse = [
        score_period(m, config, data, "test")[1]["all_nse_median"] for m in (one.model, two.model)
    ]
    assert round(nse[0], 3) == round(nse[1], 3)

    mid = tmp / "data" / "models" / RUN / "saved_models" / f"ddr_{RUN}_epoch_1_mb_1.pt"
    # Its own run folder: one_rank/ holds the attempt trained above (one attempt per folder).
    resumed_config = config.model_copy(
        update={
            "experiment": config.experiment.model_copy(update={"checkpoint": str(mid)}),
            "monitoring": config.monitoring.model_copy(update={"models_dir": str(tmp / "resumed")}),
        }
    )
    resumed = train_in_process(resumed_config, data, stats, plan, NullMonitor())
    assert len(resumed.history) == 3 and resumed.history["mini_batch"].tolist() == [0, 1, 2]
    assert _max_difference(resumed.model.state_dict(), two.model.state_dict()) < WEIGHT_ATOL


def test_two_rank_routing_equals_one_rank(drb):
    tmp, data = drb["tmp"], drb["data"]
    ckpt = load_checkpoint(tmp / "data" / "models" / RUN / "trained_model.pt")
    period = ("1980-01-01", "1980-01-31")
    routed = {}
    for ranks in (1, 2):
        settings = PredictionSettings(
            warmup_days=5, chunk_days=10, device="cpu", nproc_per_node=ranks
        )
        routed[ranks] = route_reaches(ckpt, data.inputs, period, settings, None, RUN)
    one, two = (routed[r]["discharge"] for r in (1, 2))
    assert one.sizes == two.sizes == {"reach_id": 456, "time": 31}
    np.testing.assert_array_equal(one["reach_id"], two["reach_id"])
    np.testing.assert_allclose(two.values, one.values, rtol=ROUTING_RTOL)
