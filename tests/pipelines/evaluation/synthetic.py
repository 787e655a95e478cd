"""Tiny synthetic model inputs, gauges and checkpoints for the evaluation/routing/inference tests.

Imported as ``pipelines.evaluation.synthetic`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import torch
import xarray as xr
from kedro.io import MemoryDataset


class KeptMemoryDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so tests can read intermediate outputs."""

    def _release(self) -> None:
        return None


#   1   2
#    \ /
#     3   4
#      \ /
#       5   6
#        \ /
#         7 -> outlet
REACH_IDS = np.array([1, 2, 3, 4, 5, 6, 7], dtype=np.int64)
TO_IDS = np.array([3, 3, 5, 5, 7, 7, 0], dtype=np.int64)
ATTRIBUTES = ["a1", "a2", "a3"]
FORCINGS = ["P", "PET", "Temp"]
#: gauge -> reaches; 01000005 has no observations in the test period.
GAUGES = {
    "01000001": [3],
    "01000002": [5],
    "01000003": [7],
    "01000004": [6],
    "01000005": [4],
}
SPLITS = ["train", "train", "validation", "train", "validation"]
START = "1979-11-01"
TEST_START = "1980-01-01"


def model_inputs(n_days: int = 91, seed: int = 0) -> xr.Dataset:
    """A ``model_inputs.zarr``-like dataset (architecture.md §4) from 1979-11-01."""
    rng = np.random.default_rng(seed)
    n = REACH_IDS.size
    dates = pd.date_range(START, periods=n_days, freq="D")
    season = 1.0 + 0.5 * np.sin(np.arange(n_days) / 9.0)[:, None]
    qlat = (season * rng.gamma(2.0, 1.0, size=(n_days, n))).astype(np.float32)
    upstream = {
        1: [1],
        2: [2],
        3: [1, 2, 3],
        4: [4],
        5: [1, 2, 3, 4, 5],
        6: [6],
        7: [1, 2, 3, 4, 5, 6, 7],
    }
    obs = np.stack(
        [qlat[:, [r - 1 for r in upstream[ids[0]]]].sum(axis=1) for ids in GAUGES.values()],
        axis=1,
    )
    obs = (obs * rng.uniform(0.9, 1.1, size=obs.shape)).astype(np.float32)
    obs[rng.random(obs.shape) < 0.05] = np.nan
    obs[:, -1][dates >= TEST_START] = np.nan  # gauge 5: no test observations
    attrs = rng.normal(size=(n, len(ATTRIBUTES))).astype(np.float32)
    gage = np.array(list(GAUGES), dtype="<U8")
    return xr.Dataset(
        {
            "to_id": ("reach_id", TO_IDS),
            "length_m": ("reach_id", rng.uniform(2000, 8000, n)),
            "slope": ("reach_id", rng.uniform(1e-4, 1e-2, n)),
            "x": ("reach_id", np.full(n, 0.3)),
            "attributes": (("reach_id", "attribute"), attrs),
            "attributes_raw": (("reach_id", "attribute"), attrs * 10 + 50),
            "lateral_inflow": (("time", "reach_id"), qlat),
            "forcings": (
                ("time", "reach_id", "forcing"),
                rng.normal(size=(n_days, n, len(FORCINGS))).astype(np.float32),
            ),
            "observations": (("time", "gage_id"), obs),
        },
        coords={
            "reach_id": REACH_IDS,
            "time": dates,
            "gage_id": gage,
            "attribute": ATTRIBUTES,
            "forcing": FORCINGS,
        },
        attrs={
            "train_period": [START, "1979-12-31"],
            "test_period": [TEST_START, str(dates[-1].date())],
        },
    )


def gauges_table() -> pd.DataFrame:
    """A model-input ``gauges.parquet``-like table."""
    return pd.DataFrame(
        {
            "STAID": pd.Series(list(GAUGES), dtype="str"),
            "reach_ids": [list(v) for v in GAUGES.values()],
            "split": pd.Series(SPLITS, dtype="str"),
            "drain_sqkm": [30.0, 60.0, 90.0, 10.0, 10.0],
            "lat": [40.0, 40.2, 40.4, 40.6, 40.8],
            "lon": [-75.0, -75.1, -75.2, -75.3, -75.4],
            "upstream_count": [3, 5, 7, 1, 1],
        }
    )


def reaches_table() -> gpd.GeoDataFrame:
    """Reaches as in ``reaches.parquet`` (``id`` + Point geometry) for the parameter maps."""
    lon, lat = -75.0 - 0.05 * np.arange(7), 40.0 + 0.05 * np.arange(7)
    return gpd.GeoDataFrame({"id": REACH_IDS}, geometry=gpd.points_from_xy(lon, lat), crs=4326)


def training_params(leakance: bool = False) -> dict[str, Any]:
    """A tiny ``training`` parameters dict (KAN + LSTM)."""
    kan_learn = ["q_spatial", "top_width", "side_slope"] + (["K_D_delta"] if leakance else [])
    lstm_learn = ["n"] + (["d_gw"] if leakance else [])
    return {
        "geodataset": "drb",
        "run_name": "synthetic-run",
        "experiment": {"rho": 30, "warmup": 3, "seed": 1},
        "kan": {
            "hidden_size": 4,
            "num_hidden_layers": 1,
            "grid": 3,
            "k": 2,
            "input_var_names": ["a1", "a2"],
            "learnable_parameters": kan_learn,
        },
        "cuda_lstm": {
            "hidden_size": 4,
            "dropout": 0.0,
            "forcing_var_names": FORCINGS,
            "input_var_names": ["a3"],
            "learnable_parameters": lstm_learn,
        },
        "params": {"use_leakance": leakance},
    }


def write_checkpoint(
    folder: Path, params: dict[str, Any] | None = None, *, final: bool = True
) -> Path:
    """Save an (untrained) checkpoint in the training helper's format; return its path.

    With ``final`` it is also the run's final model (``<run>/trained_model.pt``), as a finished
    training leaves it.
    """
    from ddr_pipeline.config.training import load_training_config
    from ddr_pipeline.model_store.checkpoints import (
        FINAL_MODEL_FILE,
        checkpoint_path,
        save_checkpoint,
    )
    from ddr_pipeline.models import build_models

    config = load_training_config(params or training_params())
    model = build_models(config)
    history = [{"epoch": 1, "mini_batch": i, "loss": 10.0 / (i + 1)} for i in range(4)]
    payload = {
        "format_version": 1,
        "epoch": 1,
        "mini_batch": 3,
        "epoch_complete": True,
        "global_step": 4,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": {},
        "scheduler_state": {"learning_rate": 0.01, "epoch": 1},
        "rng_state": {},
        "nonfinite": {"consecutive": 0, "total": 0},
        "config": config.model_dump(mode="json"),
        "normalization_stats": {"attributes": {}, "forcings": {}},
        "attribute_names": ATTRIBUTES,
        "forcing_names": FORCINGS,
        "history": history,
    }
    path = checkpoint_path(folder, str(config.run_name), 1, 3)
    if final:
        save_checkpoint(payload, Path(folder) / str(config.run_name) / FINAL_MODEL_FILE)
    return save_checkpoint(payload, path)


def as_torch_float(x: np.ndarray) -> torch.Tensor:
    """Helper for comparisons."""
    return torch.as_tensor(np.asarray(x, dtype=np.float32))
