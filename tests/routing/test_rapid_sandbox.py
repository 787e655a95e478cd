"""Fixed-coefficient Muskingum reproduces RAPID2's Sandbox output (David 2025, CC BY 4.0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ddr_pipeline.routing import RiverNetwork, muskingum

DATA = Path(__file__).parents[1] / "data" / "rapid_sandbox"
TAG = "Sandbox_19700101_19700110"


def _var(name: str, var: str) -> xr.DataArray:
    with xr.open_dataset(DATA / f"{name}_{TAG}.nc4", engine="h5netcdf") as ds:
        return ds[var].load()


def test_rapid_sandbox_qout_and_qfinal() -> None:
    con = pd.read_csv(DATA / "rapid_connect_Sandbox.csv", header=None, names=["id", "to_id"])
    net = RiverNetwork.from_ids(con["id"].to_numpy(), con["to_id"].to_numpy())
    qext = _var("Qext", "Qext")
    rivid = qext["rivid"].to_numpy()
    assert np.array_equal(rivid, net.ids)
    times = qext["time"].to_numpy()  # Qout/Qfinal time variables are fill values
    dt_in = np.diff(times).astype("timedelta64[s]").astype(int)
    assert np.all(dt_in == 3 * 3600)
    k = pd.read_csv(DATA / "k_Sandbox.csv", header=None)[0].to_numpy(float)
    x = pd.read_csv(DATA / "x_Sandbox.csv", header=None)[0].to_numpy(float)
    q_init = _var("Qinit", "Qout").to_numpy()[0]
    res = muskingum(
        net, torch.from_numpy(qext.to_numpy().astype(np.float64)), k=torch.tensor(k),
        x=torch.tensor(x), dt=900.0, substeps=12, initial_state=torch.tensor(q_init),
    )  # fmt: skip
    qout = _var("Qout", "Qout").to_numpy()
    qfinal = _var("Qfinal", "Qout").to_numpy()[0]
    assert res.interval_mean.shape == qout.shape == (times.size, 5)
    assert np.abs(res.interval_mean.numpy() - qout).max() <= 1e-4
    assert np.abs(res.final_state.numpy() - qfinal).max() <= 1e-6
    # conventions pinned: end-of-sub-step means would be far off
    end_means = res.states[1:].reshape(times.size, 12, 5).mean(dim=1).numpy()
    assert np.abs(end_means - qout).max() > 0.1
