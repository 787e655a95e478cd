"""Outputs of one data_processing run are checked to belong together by their consumers."""

from __future__ import annotations

import json
import types

import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data.provenance import (
    SPLIT_FINGERPRINT,
    STATS_FINGERPRINT,
    MismatchedOutputsError,
    ProcessingLockedError,
    check_provenance,
    checkpoint_split,
    processing_lock,
    provenance_record,
    split_fingerprint,
    stats_fingerprint,
)
from ddr_pipeline.experiments.ensemble import ensemble_inputs
from ddr_pipeline.experiments.selection import training_period_inputs
from ddr_pipeline.pipelines.model_loading import check_model_against_data
from ddr_pipeline.pipelines.training import nodes as training_nodes

OLD_SPLIT = ["train", "train", "validation"]
NEW_SPLIT = ["train", "validation", "train"]


def _gauges(splits: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"STAID": ["01234567", "01234568", "01234569"], "split": splits})


def _stats(gauges: pd.DataFrame, mean: float = 1.0) -> dict:
    computed_on = {"n_reaches": 3, "period": ["1980-01-01", "1980-12-31"]}
    computed_on[SPLIT_FINGERPRINT] = split_fingerprint(gauges)
    return {"attributes": {"a": {"mean": mean, "std": 0.5}}, "computed_on": computed_on}


def test_gauges_rewritten_by_a_failed_run_are_refused():
    """gauges.parquet rewritten by a failed run; model_inputs.zarr and stats from the last one."""
    old, new = _gauges(OLD_SPLIT), _gauges(NEW_SPLIT)
    model_inputs = xr.Dataset(attrs={SPLIT_FINGERPRINT: split_fingerprint(old)})
    with pytest.raises(MismatchedOutputsError, match="model_inputs.zarr and gauges.parquet"):
        training_nodes.prepare_data(model_inputs, new, config=None)
    data = types.SimpleNamespace(gauges=new, stats_fingerprint=None)
    with pytest.raises(MismatchedOutputsError, match="normalization_stats.json and gauges.parquet"):
        training_nodes.train_model(None, data, _stats(old), None)


def test_statistics_of_another_run_are_refused_by_training_evaluation_and_routing():
    gauges = _gauges(OLD_SPLIT)
    written = _stats(gauges)
    saved = json.loads(json.dumps(written))  # what the JSON dataset loads back
    assert stats_fingerprint(saved) == stats_fingerprint(written)
    other = _stats(gauges, mean=2.0)  # same split, another run's statistics
    data = types.SimpleNamespace(gauges=gauges, stats_fingerprint=stats_fingerprint(written))
    match = "model_inputs.zarr and normalization_stats.json come from different"
    with pytest.raises(MismatchedOutputsError, match=match):
        training_nodes.train_model(None, data, other, None)
    model_inputs = xr.Dataset(attrs={STATS_FINGERPRINT: stats_fingerprint(written)})
    with pytest.raises(MismatchedOutputsError, match=match):
        check_model_against_data(None, model_inputs, other, "drb")


def _payload(gauges: pd.DataFrame) -> dict:
    """A checkpoint payload as far as provenance goes: trained with ``gauges``' split."""
    return {"data_provenance": provenance_record(_stats(gauges)), "normalization_stats": {}}


def test_evaluation_refuses_gauges_copied_from_another_run():
    """The issue's reproduction: gauges.parquet of another data_processing run (other seed),
    model inputs and statistics of this one; 'held-out' scores would be on training gauges."""
    this_run, other_run = _gauges(OLD_SPLIT), _gauges(NEW_SPLIT)
    stats = _stats(this_run)
    fingerprints = {SPLIT_FINGERPRINT: split_fingerprint(this_run)}
    model_inputs = xr.Dataset(attrs={**fingerprints, STATS_FINGERPRINT: stats_fingerprint(stats)})
    with pytest.raises(MismatchedOutputsError, match="model_inputs.zarr and gauges.parquet"):
        check_model_against_data(None, model_inputs, stats, "drb", gauges=other_run)


def test_a_checkpoint_records_its_split_and_is_refused_on_another():
    trained_on, now = _gauges(OLD_SPLIT), _gauges(NEW_SPLIT)
    payload = _payload(trained_on)
    assert checkpoint_split(payload) == split_fingerprint(trained_on)
    legacy = {"normalization_stats": _stats(trained_on)}  # before data_provenance: its stats
    assert checkpoint_split(legacy) == split_fingerprint(trained_on)
    check_provenance(gauges=trained_on, checkpoint=payload)
    with pytest.raises(MismatchedOutputsError, match="trained on another gauge split.*held-out"):
        check_provenance(gauges=now, stats=_stats(now), checkpoint=payload, checkpoint_name="m.pt")
    model_inputs = xr.Dataset(attrs={SPLIT_FINGERPRINT: split_fingerprint(now)})
    ckpt = types.SimpleNamespace(payload=payload)
    with pytest.raises(MismatchedOutputsError, match="the trained model was trained on another"):
        check_model_against_data(ckpt, model_inputs, _stats(now), "drb")


def test_selection_and_ensembles_check_the_same_provenance():
    this_run, other_run = _gauges(OLD_SPLIT), _gauges(NEW_SPLIT)
    ds = xr.Dataset(attrs={SPLIT_FINGERPRINT: split_fingerprint(this_run)})
    with pytest.raises(MismatchedOutputsError, match="model_inputs.zarr and gauges.parquet"):
        training_period_inputs(ds, other_run)
    with pytest.raises(MismatchedOutputsError, match="normalization_stats.json and gauges"):
        ensemble_inputs(xr.Dataset(), other_run, _stats(this_run))


def test_one_data_processing_run_per_geodataset_at_a_time(tmp_path):
    folder = tmp_path / "05_model_input" / "drb"
    with processing_lock(folder, "drb"):
        refused = pytest.raises(ProcessingLockedError, match="another data_processing run of")
        with refused, processing_lock(folder, "drb"):
            pass
        with processing_lock(tmp_path / "05_model_input" / "merit", "merit"):
            pass  # another geodataset is independent
    with processing_lock(folder, "drb"):  # released after the run
        pass


def test_the_hook_locks_the_geodatasets_a_run_writes(tmp_path):
    from ddr_pipeline.pipelines.data_processing.pipeline import create_pipeline
    from ddr_pipeline.project.hooks import DataProcessingLockHooks, processed_geodatasets

    pipeline = create_pipeline(["drb"])
    assert processed_geodatasets(pipeline) == ["drb"]
    path = tmp_path / "drb" / "model_inputs.zarr"
    resolver = types.SimpleNamespace(resolve_pattern=lambda name: {"filepath": str(path)})
    catalog = types.SimpleNamespace(config_resolver=resolver)
    first, second = DataProcessingLockHooks(), DataProcessingLockHooks()
    first.before_pipeline_run(pipeline, catalog)
    with pytest.raises(ProcessingLockedError, match=str(path.parent)):
        second.before_pipeline_run(pipeline, catalog)
    first.after_pipeline_run()
    second.before_pipeline_run(pipeline, catalog)
    second.on_pipeline_error()
