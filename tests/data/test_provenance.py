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
    split_fingerprint,
    stats_fingerprint,
)
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
