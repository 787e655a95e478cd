"""A synthetic twin for training tests: model inputs whose observations are routed truth.

Two small binary-tree basins; Manning's n is a known function of the first attribute
(``TRUE_N``); observations are the daily means of the Muskingum-Cunge routing with that n.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import daily_mean, muskingum_cunge, repeat_daily

ATTRIBUTES = ("a0", "a1", "a2")
FORCINGS = ("P", "PET", "Temp")
N_DAYS = 120
START = "2000-01-01"
TRAIN_PERIOD = ("2000-01-01", "2000-03-30")  # 90 days
TEST_PERIOD = ("2000-03-31", "2000-04-29")  # 30 days
TRUE_PARAMS = {"q_spatial": 0.5, "top_width": 40.0, "side_slope": 2.0, "p": 21.0}


def true_n(attribute0: np.ndarray) -> np.ndarray:
    """The known Manning's n field: a smooth increasing function of attribute ``a0``."""
    return 0.02 + 0.18 / (1.0 + np.exp(-1.5 * attribute0))


def _tree(first_id: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A binary tree: reach k (1-based) drains into k // 2; reach 1 is the outlet."""
    k = np.arange(1, size + 1)
    ids = first_id + k
    to_ids = np.where(k > 1, first_id + k // 2, 0)
    return ids.astype(np.int64), to_ids.astype(np.int64)


def _lateral_inflow(rng: np.random.Generator, n_reaches: int) -> np.ndarray:
    """Positive daily inflow with storm events: (T, N) float32 m3/s."""
    t = np.arange(N_DAYS)[:, None]
    base = rng.uniform(0.5, 2.0, n_reaches)[None, :]
    flow = np.repeat(base, N_DAYS, axis=0)
    for _ in range(14):
        centre = rng.uniform(0, N_DAYS)
        width = rng.uniform(1.0, 3.0)
        peak = rng.uniform(5.0, 30.0, n_reaches)[None, :]
        flow = flow + peak * np.exp(-0.5 * ((t - centre) / width) ** 2)
    return flow.astype(np.float32)


def make_twin(seed: int = 0) -> tuple[xr.Dataset, pd.DataFrame, dict[str, Any]]:
    """``(model_inputs dataset, gauges table, normalisation stats)`` of the synthetic twin."""
    rng = np.random.default_rng(seed)
    ids_a, to_a = _tree(100, 15)
    ids_b, to_b = _tree(200, 7)
    ids = np.concatenate([ids_a, ids_b])
    to_ids = np.concatenate([to_a, to_b])
    n = ids.size
    attributes = rng.normal(size=(n, len(ATTRIBUTES))).astype(np.float32)
    attributes_raw = (attributes * 10.0 + 50.0).astype(np.float32)
    dates = pd.date_range(START, periods=N_DAYS, freq="D")
    forcings = rng.normal(size=(N_DAYS, n, len(FORCINGS))).astype(np.float32)
    inflow = _lateral_inflow(rng, n)
    length = rng.uniform(4000.0, 12000.0, n).astype(np.float32)
    slope = rng.uniform(5e-4, 5e-3, n).astype(np.float32)
    x = np.full(n, 0.3, dtype=np.float32)
    observations = _route_truth(ids, to_ids, inflow, length, slope, x, attributes[:, 0])
    ds = xr.Dataset(
        {
            "to_id": ("reach_id", to_ids),
            "length_m": ("reach_id", length),
            "slope": ("reach_id", slope),
            "x": ("reach_id", x),
            "attributes": (("reach_id", "attribute"), attributes),
            "attributes_raw": (("reach_id", "attribute"), attributes_raw),
            "lateral_inflow": (("time", "reach_id"), inflow),
            "forcings": (("time", "reach_id", "forcing"), forcings),
            "observations": (("time", "gage_id"), observations),
        },
        coords={
            "reach_id": ids,
            "attribute": list(ATTRIBUTES),
            "forcing": list(FORCINGS),
            "time": dates,
            "gage_id": [f"{i:08d}" for i in ids],
        },
        attrs={"train_period": list(TRAIN_PERIOD), "test_period": list(TEST_PERIOD)},
    )
    splits = np.where(np.isin(np.arange(n), [3, 9, 17, 20]), "validation", "train")
    gauges = pd.DataFrame(
        {
            "STAID": pd.Series([f"{i:08d}" for i in ids], dtype="string"),
            "reach_ids": [[int(i)] for i in ids],
            "split": pd.Series(splits, dtype="string"),
        }
    )
    stats = {
        "attributes": {a: {"mean": 50.0, "std": 10.0} for a in ATTRIBUTES},
        "forcings": {f: {"mean": 0.0, "std": 1.0} for f in FORCINGS},
        "computed_on": {"train": list(TRAIN_PERIOD)},
    }
    return ds, gauges, stats


def _route_truth(ids, to_ids, inflow, length, slope, x, attribute0) -> np.ndarray:
    """Daily mean routed discharge at every reach with the true parameters: (T, N) float32."""
    net = RiverNetwork.from_ids(ids, to_ids)
    n = ids.size
    params = {k: torch.full((n,), v, dtype=torch.float64) for k, v in TRUE_PARAMS.items()}
    params["n"] = torch.from_numpy(true_n(attribute0.astype(np.float64)))
    q = muskingum_cunge(
        net,
        repeat_daily(torch.from_numpy(inflow.astype(np.float64))),
        channel={
            "length": torch.from_numpy(length.astype(np.float64)),
            "slope": torch.from_numpy(slope.astype(np.float64)),
            "x": torch.from_numpy(x.astype(np.float64)),
        },
        params=params,
    )
    return daily_mean(q).numpy().astype(np.float32)


def twin_training_params() -> dict[str, Any]:
    """A ``training`` parameters dict that learns n with the KAN only (the twin's truth)."""
    return {
        "geodataset": "drb",
        "run_name": "twin",
        "experiment": {
            "epochs": 6,
            "batch_size": 6,
            "rho": 45,
            "warmup": 5,
            "checkpoint_every": 100,
            "learning_rate": {1: 0.02},
            "grad_clip_norm": 1.0,
            "seed": 0,
            "device": "cpu",
        },
        "kan": {
            "hidden_size": 5,
            "num_hidden_layers": 1,
            "grid": 3,
            "k": 2,
            "input_var_names": list(ATTRIBUTES),
            "learnable_parameters": ["n"],
        },
        "cuda_lstm": None,
        "params": {
            "defaults": {
                "q_spatial": TRUE_PARAMS["q_spatial"],
                "top_width": TRUE_PARAMS["top_width"],
                "side_slope": TRUE_PARAMS["side_slope"],
                "p_spatial": TRUE_PARAMS["p"],
                "x": 0.3,
            },
            "use_leakance": False,
        },
        "loss": {"name": "mse"},
    }


def full_training_params() -> dict[str, Any]:
    """KAN + LSTM (dropout) + leakance, 2 epochs x 3 mini-batches: exercises every RNG."""
    return {
        "geodataset": "drb",
        "run_name": "full",
        "experiment": {
            "epochs": 2,
            "batch_size": 6,
            "rho": 20,
            "warmup": 2,
            "checkpoint_every": 1,
            "learning_rate": {1: 0.01, 2: 0.005},
            "grad_clip_norm": 1.0,
            "seed": 3,
            "device": "cpu",
            "validation_every": 2,
        },
        "kan": {
            "hidden_size": 4,
            "num_hidden_layers": 1,
            "grid": 3,
            "k": 2,
            "input_var_names": ["a0", "a1"],
            "learnable_parameters": ["q_spatial", "top_width", "side_slope", "K_D_delta"],
        },
        "cuda_lstm": {
            "hidden_size": 4,
            "num_layers": 1,
            "dropout": 0.5,
            "forcing_var_names": list(FORCINGS),
            "input_var_names": ["a0", "a2"],
            "learnable_parameters": ["n", "d_gw"],
        },
        "params": {"use_leakance": True},
        "loss": {"name": "mse"},
    }


def with_changes(params: dict[str, Any], **experiment: Any) -> dict[str, Any]:
    """A deep copy of ``params`` with ``experiment`` keys replaced."""
    out = copy.deepcopy(params)
    out["experiment"].update(experiment)
    return out
