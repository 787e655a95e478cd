"""Forward parity with DDR's own routing code on the Juniata network (not CI).

Runs DDR's ``MuskingumCunge`` (``src/ddr/routing/{mmc,utils}.py`` of DeepGroundwater/ddr at a
given commit, read from a git checkout or bare mirror with ``git show``) and the project's engine
(:func:`ddr_pipeline.routing.muskingum_cunge`) on the 213 Juniata reaches with the same fixed
per-reach parameters, the same Q′ (daily rows repeated hourly) and the same conventions, and
reports the largest absolute and relative difference of hourly discharge.

    python benchmarks/ddr_parity.py --ddr-git /path/to/ddr[.git] --commit b3f122e \\
        --start 1995-10-01 --days 366

Only DDR's routing modules are run; DDR's package ``__init__`` (which imports its data readers,
pykan, icechunk and hydra) is replaced by an empty one and ``ddr.validation.configs.Config`` by a
stub (``mmc.py`` imports it for type hints only; the script passes the config values DDR reads,
``cfg.params.*``). Everything else is DDR's code unchanged.

Which DDR: the project's physics is DDR's with static top width / side slope (v0.5.0 / v0.5.1,
commit ``b3f122e``, tag v0.5.1), routed with ``x_mode="data"`` (X = 0.3, DDR's MERIT constant) and
``celerity="wide_rectangle"`` (c = 5/3 v). DDR's HEAD (after PR #166) derives the top width and
side slope every step from p_spatial and the depth, which the project does not implement yet
(issue 22); at HEAD the observed-geometry override does not enter the velocity, so HEAD cannot be
compared with fixed geometry.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import muskingum_cunge

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "01_raw" / "juniata"
DDR_FILES = ("src/ddr/routing/mmc.py", "src/ddr/routing/utils.py", "src/ddr/routing/__init__.py")
FLOORS = {"discharge": 1e-4, "slope": 1e-3, "velocity": 0.01, "depth": 0.01, "bottom_width": 0.01}
RANGES = {"n": [0.015, 0.25], "q_spatial": [0.0, 1.0], "top_width": [1.0, 5000.0],
          "side_slope": [0.5, 50.0]}  # fmt: skip


def import_ddr(git_dir: Path, commit: str, into: Path):  # noqa: ANN201 (DDR's class)
    """DDR's ``MuskingumCunge`` class from ``commit`` (its routing modules, stub package)."""
    for name in DDR_FILES:
        text = subprocess.run(
            ["git", "--git-dir", str(git_dir), "show", f"{commit}:{name}"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        target = into / name.removeprefix("src/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (into / "ddr" / "__init__.py").write_text("")
    (into / "ddr" / "validation").mkdir(exist_ok=True)
    (into / "ddr" / "validation" / "__init__.py").write_text("")
    (into / "ddr" / "validation" / "configs.py").write_text("Config = object  # stub\n")
    sys.path.insert(0, str(into))
    from ddr.routing.mmc import MuskingumCunge  # type: ignore[import-not-found]

    return MuskingumCunge


def parameters(n_reaches: int, seed: int) -> dict[str, np.ndarray]:
    """Fixed, varied per-reach parameters (physical units)."""
    rng = np.random.default_rng(seed)
    return {
        "n": rng.uniform(0.03, 0.08, n_reaches),
        "q_spatial": rng.uniform(0.2, 0.8, n_reaches),
        "top_width": rng.uniform(20.0, 120.0, n_reaches),
        "side_slope": rng.uniform(1.0, 3.0, n_reaches),
    }


def main(argv: list[str] | None = None) -> None:  # noqa: PLR0914 (one linear script)
    """Run both engines and print the differences (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ddr-git", type=Path, required=True, help="DDR checkout/.git or mirror")
    parser.add_argument("--commit", default="b3f122e")
    parser.add_argument("--start", default="1995-10-01")
    parser.add_argument("--days", type=int, default=366)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    parser.add_argument("--dump", type=Path, default=None, help="save both trajectories (.npz)")
    args = parser.parse_args(argv)
    git_dir = args.ddr_git / ".git" if (args.ddr_git / ".git").exists() else args.ddr_git

    reaches = pd.read_parquet(RAW / "reaches.parquet")
    ids = reaches["id"].to_numpy(np.int64)
    pos = {int(r): i for i, r in enumerate(ids)}
    down = np.array([pos.get(int(t), -1) if pd.notna(t) else -1 for t in reaches["to_id"]])
    up = np.flatnonzero(down >= 0)
    if not (down[up] > up).all():
        raise ValueError("reaches.parquet is not in DDR's topological (lower-triangular) order")
    n = len(ids)
    with xr.open_zarr(RAW / "lateral_inflow.zarr", consolidated=False) as ds:
        dates = pd.date_range(args.start, periods=args.days, freq="D")
        daily = ds["Qr"].sel(divide_id=ids, time=dates).transpose("time", "divide_id").values
    daily = daily.astype(np.float64)
    params = parameters(n, args.seed)
    length = reaches["length_m"].to_numpy(np.float64)
    slope = reaches["slope"].to_numpy(np.float64)
    x = np.full(n, 0.3)

    with tempfile.TemporaryDirectory(prefix="ddr-parity-") as tmp:
        muskingum_cunge_ddr = import_ddr(git_dir, args.commit, Path(tmp))
        cfg = SimpleNamespace(params=SimpleNamespace(
            parameter_ranges=RANGES, log_space_parameters=[], defaults={"p_spatial": 21.0},
            attribute_minimums=FLOORS,
        ))  # fmt: skip
        adjacency = torch.sparse_coo_tensor(
            torch.tensor(np.stack([down[up], up])), torch.ones(up.size), (n, n)
        ).to_sparse_csr()
        f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        data = SimpleNamespace(
            adjacency_matrix=adjacency, length=f32(length), slope=f32(slope), x=f32(x),
            top_width=f32(params["top_width"]), side_slope=f32(params["side_slope"]),
            outflow_idx=None, gage_catchment=None, observations=None, flow_scale=None,
        )  # fmt: skip
        normalized = {
            k: f32((params[k] - RANGES[k][0]) / (RANGES[k][1] - RANGES[k][0]))
            for k in ("n", "q_spatial")
        }
        hourly = f32(np.repeat(daily, 24, axis=0))
        router = muskingum_cunge_ddr(cfg, "cpu")
        started = time.perf_counter()
        with torch.no_grad():
            router.setup_inputs(data, hourly, normalized)
            ddr = router.forward().double().numpy().T  # (T, N): row 0 = hot start
        ddr_seconds = time.perf_counter() - started

    net = RiverNetwork.from_ids(ids, reaches["to_id"].to_numpy())
    started = time.perf_counter()
    ours = muskingum_cunge(
        net,
        torch.tensor(daily),
        channel={"length": torch.tensor(length), "slope": torch.tensor(slope), "x": torch.tensor(x)},
        params={**{k: torch.tensor(v) for k, v in params.items()}, "p": 21.0},
        substeps=24, x_mode="data", celerity="wide_rectangle",
        q_min=FLOORS["discharge"], s_min=FLOORS["slope"], v_min=FLOORS["velocity"],
        d_min=FLOORS["depth"], b_min=FLOORS["bottom_width"],
    ).numpy()[: ddr.shape[0]]  # fmt: skip
    ours_seconds = time.perf_counter() - started
    diff = np.abs(ours - ddr)
    rel = diff / np.maximum(np.abs(ddr), 1e-3)
    worst = np.unravel_index(diff.argmax(), diff.shape)
    result = {
        "ddr_commit": args.commit,
        "period": [str(dates[0].date()), args.days],
        "hours_compared": int(ddr.shape[0]),
        "reaches": n,
        "max_abs_diff_m3s": float(diff.max()),
        "max_rel_diff": float(rel.max()),
        "worst_at": {"hour": int(worst[0]), "reach_id": int(ids[worst[1]]),
                     "ddr": float(ddr[worst]), "ours": float(ours[worst])},  # fmt: skip
        "outlet_max_abs_diff_m3s": float(diff[:, -1].max()),
        "mean_abs_diff_m3s": float(diff.mean()),
        "max_discharge_m3s": float(ddr.max()),
        "seconds": {"ddr": ddr_seconds, "ours": ours_seconds},
    }
    print(json.dumps(result, indent=2))
    if args.dump:
        np.savez(args.dump, ddr=ddr, ours=ours, ids=ids, params=np.stack(list(params.values())))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
