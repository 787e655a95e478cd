"""Forward parity with DDR's own routing code on the Juniata network (not CI).

Runs DDR's ``MuskingumCunge`` (``src/ddr/routing/{mmc,utils}.py`` and, at HEAD,
``src/ddr/geometry/trapezoidal.py`` of DeepGroundwater/ddr at a given commit, read from a git
checkout or bare mirror with ``git show``) and the project's engine
(:func:`ddr_pipeline.routing.muskingum_cunge`) on the 213 Juniata reaches with the same fixed
per-reach parameters, the same Q′ (daily rows repeated hourly) and the same conventions, and
reports the largest absolute and relative difference of hourly discharge.

    python benchmarks/ddr_parity.py --ddr-git /path/to/ddr[.git] --commit 7c90db6 \
        --start 1995-10-01 --days 366            # HEAD: geometry derived each step
    python benchmarks/ddr_parity.py --ddr-git ... --commit b3f122e --geometry learned  # v0.5.1

Only DDR's routing modules are run; DDR's package ``__init__`` files (which import its data
readers, pykan, icechunk, hydra and the geometry predictor) are replaced by empty ones and
``ddr.validation.configs.Config`` by a stub (``mmc.py`` imports it for type hints only; the
script passes the config values DDR reads, ``cfg.params.*``). Everything else is DDR's code
unchanged, except with ``--float64``: then every ``torch.float32`` in DDR's routing modules is
replaced by ``torch.float64`` and torch's default dtype is float64 (a diagnostic that separates
DDR's float32 round-off from every other difference), and with ``--clamp-in-solve``: then DDR's
triangular solve is replaced by a float64 forward substitution that floors each reach at Q_min
before its outflow enters the next reach, the project's order (DDR clamps the whole solution
after the solve, so a downstream reach sees a negative upstream value unclamped; a diagnostic
that separates that convention from the rest). ``--check-solve`` records, without changing
anything, how far DDR's solve is from a float64 substitution and where it fell below Q_min.

Conventions made identical (``--geometry ddr``, DDR HEAD): the project routes with
``geometry="ddr"``, ``x_mode="data"`` (X = 0.3, DDR's MERIT constant) and
``celerity="wide_rectangle"`` (c = 5/3 v: DDR at this commit has neither Cunge X nor the exact
celerity, which came with its PR #192); the project is given DDR's own float32 parameters as
DDR denormalised them (n, q, p = DDR's ``router.n/q_spatial/p_spatial``), with DDR's ``+1e-6``
on q (DDR adds it everywhere q enters: the depth exponent, Manning's (q+1), W = p·d^q and z), and
DDR's float32 length, slope and Q′. What remains: DDR's float32 arithmetic and its ``+1e-8`` in
the depth denominator p·√S (relative 3e-7 here, not reproduced).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import xarray as xr

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import muskingum_cunge

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "01_raw" / "juniata"
DDR_FILES = ("src/ddr/routing/mmc.py", "src/ddr/routing/utils.py")
DDR_GEOMETRY = "src/ddr/geometry/trapezoidal.py"  # DDR HEAD: the derived geometry
#: DDR's +1e-6 on q_spatial (``ddr.geometry.trapezoidal``): part of its parameterisation
DDR_Q_EPS = 1e-6
FLOORS = {"discharge": 1e-4, "slope": 1e-3, "velocity": 0.01, "depth": 0.01, "bottom_width": 0.01}
RANGES = {"n": [0.015, 0.25], "q_spatial": [0.0, 1.0], "p_spatial": [1.0, 200.0],
          "top_width": [1.0, 5000.0], "side_slope": [0.5, 50.0]}  # fmt: skip


def _git_show(git_dir: Path, commit: str, name: str) -> str | None:
    done = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{name}"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout if done.returncode == 0 else None


def import_ddr(git_dir: Path, commit: str, into: Path, float64: bool = False):  # noqa: ANN201
    """DDR's ``MuskingumCunge`` class from ``commit`` (its routing and geometry modules, stub
    package ``__init__`` files); ``float64``: DDR's ``torch.float32`` casts made float64."""
    for name in (*DDR_FILES, DDR_GEOMETRY):
        text = _git_show(git_dir, commit, name)
        if text is None:
            if name == DDR_GEOMETRY:
                continue  # v0.5.1 and earlier: static geometry, no such module
            raise FileNotFoundError(f"{name} is not in DDR commit {commit}")
        if float64:
            text = text.replace("torch.float32", "torch.float64").replace(
                "cp.float32", "cp.float64"
            )
        target = into / name.removeprefix("src/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for package in ("ddr", "ddr/routing", "ddr/geometry", "ddr/validation"):
        (into / package).mkdir(parents=True, exist_ok=True)
        (into / package / "__init__.py").write_text("")
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
        "p_spatial": np.exp(rng.uniform(np.log(5.0), np.log(80.0), n_reaches)),
        "top_width": rng.uniform(20.0, 120.0, n_reaches),
        "side_slope": rng.uniform(1.0, 3.0, n_reaches),
    }


def normalized(params: dict[str, np.ndarray], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The (0, 1) network outputs that DDR's ``denormalize`` maps to ``params`` (p_spatial in
    DDR's log space, whose lower end is ``log(lo + 1e-6)``)."""
    out = {}
    for k in names:
        lo, hi = RANGES[k]
        if k == "p_spatial":
            lo_log = np.log(lo + 1e-6)
            out[k] = (np.log(params[k]) - lo_log) / (np.log(hi) - lo_log)
        else:
            out[k] = (params[k] - lo) / (hi - lo)
    return out


def juniata(start: str, days: int) -> dict:
    """The Juniata network in DDR's topological order, its channel data and daily Q′."""
    reaches = pd.read_parquet(RAW / "reaches.parquet")
    ids = reaches["id"].to_numpy(np.int64)
    pos = {int(r): i for i, r in enumerate(ids)}
    down = np.array([pos.get(int(t), -1) if pd.notna(t) else -1 for t in reaches["to_id"]])
    up = np.flatnonzero(down >= 0)
    if not (down[up] > up).all():
        raise ValueError("reaches.parquet is not in DDR's topological (lower-triangular) order")
    dates = pd.date_range(start, periods=days, freq="D")
    with xr.open_zarr(RAW / "lateral_inflow.zarr", consolidated=False) as ds:
        daily = ds["Qr"].sel(divide_id=ids, time=dates).transpose("time", "divide_id").values
    return {
        "ids": ids, "to_id": reaches["to_id"].to_numpy(), "down": down, "up": up,
        "dates": dates, "daily": daily.astype(np.float32),
        "length": reaches["length_m"].to_numpy(np.float32),
        "slope": reaches["slope"].to_numpy(np.float32),
    }  # fmt: skip


class SolveCheck:
    """Wraps DDR's ``triangular_sparse_solve``: the largest difference of its solution from a
    float64 forward substitution of the same matrix values and right-hand side, and every
    (solve, reach) whose solution fell below Q_min. DDR clamps at Q_min only after the whole
    network is solved, so a downstream reach sees such an upstream value unclamped, whereas the
    project clamps each reach before its outflow enters the next one (docs/coming_from_ddr.md)."""

    def __init__(self, solve, clamp_rows: bool = False) -> None:  # noqa: ANN001 (DDR's)
        self.solve = solve
        self.clamp_rows = clamp_rows
        self.max_abs = 0.0
        self.below_qmin: list[tuple[int, int, float]] = []  # (solve = hour, reach, value)
        self.steps = 0

    def __call__(self, values, crow, col, b, *args):  # noqa: ANN001, ANN204
        x = self.solve(values, crow, col, b, *args)
        n = b.numel()
        a = sp.csr_matrix((values.double().numpy(), col.numpy(), crow.numpy()), shape=(n, n))
        lower, diag, rhs = sp.tril(a, k=-1).tocsr(), a.diagonal(), b.double().numpy()
        exact, clamped = np.zeros(n), np.zeros(n)
        for i in range(n):  # rows in topological order: a plain forward substitution
            lo, hi = lower.indptr[i], lower.indptr[i + 1]
            exact[i] = (rhs[i] - lower.data[lo:hi] @ exact[lower.indices[lo:hi]]) / diag[i]
            clamped[i] = (rhs[i] - lower.data[lo:hi] @ clamped[lower.indices[lo:hi]]) / diag[i]
            clamped[i] = max(clamped[i], FLOORS["discharge"])  # the project's order
        solved = x.double().numpy()
        self.max_abs = max(self.max_abs, float(np.abs(solved - exact).max()))
        low = np.flatnonzero(solved < FLOORS["discharge"])
        self.below_qmin += [(self.steps, int(i), float(solved[i])) for i in low]
        self.steps += 1  # solve 0 is the hot start, solve h produces hour h
        if self.clamp_rows:  # --clamp-in-solve: each reach floored before it flows downstream
            return torch.tensor(clamped, dtype=x.dtype)
        return x


def run_ddr(args: argparse.Namespace, net: dict, params: dict) -> tuple[np.ndarray, dict, dict]:
    """DDR's routing: (T, N) hourly discharge (row 0 = hot start), the float32 parameters DDR
    routed with, and timings / solve check."""
    git_dir = args.ddr_git / ".git" if (args.ddr_git / ".git").exists() else args.ddr_git
    n = net["ids"].size
    dtype = torch.float64 if args.float64 else torch.float32
    if args.float64:
        torch.set_default_dtype(torch.float64)
    with tempfile.TemporaryDirectory(prefix="ddr-parity-") as tmp:
        router_class = import_ddr(git_dir, args.commit, Path(tmp), args.float64)
        import ddr.routing.mmc as ddr_mmc  # type: ignore[import-not-found]

        wrap = args.check_solve or args.clamp_in_solve
        check = SolveCheck(ddr_mmc.triangular_sparse_solve, args.clamp_in_solve) if wrap else None
        if check is not None:
            ddr_mmc.triangular_sparse_solve = check
        learned = ("n", "q_spatial", "p_spatial") if args.geometry == "ddr" else ("n", "q_spatial")
        cfg = SimpleNamespace(params=SimpleNamespace(
            parameter_ranges=RANGES, defaults={"p_spatial": 21.0}, attribute_minimums=FLOORS,
            log_space_parameters=["p_spatial"] if args.geometry == "ddr" else [],
        ))  # fmt: skip
        down, up = net["down"], net["up"]
        adjacency = torch.sparse_coo_tensor(
            torch.tensor(np.stack([down[up], up])), torch.ones(up.size, dtype=dtype), (n, n)
        ).to_sparse_csr()
        tensor = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
        static = args.geometry == "learned"
        data = SimpleNamespace(
            adjacency_matrix=adjacency, length=tensor(net["length"]), slope=tensor(net["slope"]),
            x=tensor(np.full(n, 0.3)), outflow_idx=None, gage_catchment=None, observations=None,
            flow_scale=None,
            top_width=tensor(params["top_width"]) if static else torch.empty(0),
            side_slope=tensor(params["side_slope"]) if static else torch.empty(0),
        )  # fmt: skip
        outputs = {k: tensor(v) for k, v in normalized(params, learned).items()}
        router = router_class(cfg, "cpu")
        started = time.perf_counter()
        with torch.no_grad():
            router.setup_inputs(data, tensor(np.repeat(net["daily"], 24, axis=0)), outputs)
            routed = router.forward().double().numpy().T
        seconds = time.perf_counter() - started
        used = {"n": router.n, "q_spatial": router.q_spatial, "p": router.p_spatial,
                "slope": router.slope}  # fmt: skip
        used = {k: v.double().numpy() for k, v in used.items()}
    torch.set_default_dtype(torch.float32)
    info = {"seconds": seconds}
    if check is not None:
        info["solve_vs_float64_substitution_max_abs_m3s"] = check.max_abs
        info["solves_checked"] = check.steps
        info["solutions_below_qmin"] = len(check.below_qmin)
        info["below_qmin_examples"] = [
            {"hour": h, "reach_id": int(net["ids"][i]), "solution_m3s": v}
            for h, i, v in sorted(check.below_qmin, key=lambda e: e[2])[:5]
        ]
        info["first_below_qmin_hour"] = min((h for h, _, _ in check.below_qmin), default=None)
    return routed, used, info


def run_ours(args: argparse.Namespace, net: dict, params: dict, used: dict) -> np.ndarray:
    """The project's engine with DDR's conventions and DDR's own (float32) parameter values.

    DDR floors Q′ at Q_min in every routing step but not in its hot start, the project floors
    neither (negative Q′ is refused): the routed rows get DDR's floored Q′ and the initial state
    is the project's hot start of the unfloored first row (the same accumulation, floored)."""
    n = net["ids"].size
    t = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    if args.geometry == "ddr":
        routed = {"n": t(used["n"]), "q_spatial": t(used["q_spatial"] + DDR_Q_EPS),
                  "p": t(np.broadcast_to(used["p"], (n,)))}  # fmt: skip
    else:
        routed = {k: t(params[k]) for k in ("n", "q_spatial", "top_width", "side_slope")}
        routed["p"] = t(np.full(n, 21.0))
    options = {
        "channel": {"length": t(net["length"]), "slope": t(used["slope"]),
                    "x": t(np.full(n, 0.3))},
        "params": routed, "substeps": 24, "x_mode": "data", "celerity": "wide_rectangle",
        "geometry": args.geometry, "q_min": FLOORS["discharge"], "s_min": FLOORS["slope"],
        "v_min": FLOORS["velocity"], "d_min": FLOORS["depth"], "b_min": FLOORS["bottom_width"],
    }  # fmt: skip
    network = RiverNetwork.from_ids(net["ids"], net["to_id"])
    daily = t(net["daily"])
    hot = muskingum_cunge(network, daily[:1], **options)[0]
    floored = daily.clamp(min=FLOORS["discharge"])
    return muskingum_cunge(network, floored, initial_state=hot, **options).numpy()


def compare(ours: np.ndarray, ddr: np.ndarray, ids: np.ndarray) -> dict:
    """Largest absolute / relative differences of hourly discharge, where, and summaries."""
    diff = np.abs(ours - ddr)
    rel = diff / np.maximum(np.abs(ddr), 1e-3)
    worst = np.unravel_index(diff.argmax(), diff.shape)
    worst_rel = np.unravel_index(rel.argmax(), rel.shape)
    return {
        "hours_compared": int(ddr.shape[0]),
        "reaches": int(ddr.shape[1]),
        "max_abs_diff_m3s": float(diff.max()),
        "max_rel_diff": float(rel.max()),
        "worst_at": {
            "hour": int(worst[0]),
            "reach_id": int(ids[worst[1]]),
            "ddr": float(ddr[worst]),
            "ours": float(ours[worst]),
        },  # fmt: skip
        "worst_rel_at": {
            "hour": int(worst_rel[0]),
            "reach_id": int(ids[worst_rel[1]]),
            "ddr": float(ddr[worst_rel]),
            "ours": float(ours[worst_rel]),
        },  # fmt: skip
        "outlet_max_abs_diff_m3s": float(diff[:, -1].max()),
        "mean_abs_diff_m3s": float(diff.mean()),
        "p99_abs_diff_m3s": float(np.quantile(diff, 0.99)),
        "max_discharge_m3s": float(ddr.max()),
    }


def main(argv: list[str] | None = None) -> None:
    """Run both engines and print the differences (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ddr-git", type=Path, required=True, help="DDR checkout/.git or mirror")
    parser.add_argument("--commit", default="7c90db6")
    parser.add_argument("--geometry", choices=["ddr", "learned"], default="ddr",
                        help="ddr: DDR HEAD's derived geometry; learned: v0.5.1's static one")  # fmt: skip
    parser.add_argument("--start", default="1995-10-01")
    parser.add_argument("--days", type=int, default=366)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float64", action="store_true", help="DDR's float32 casts -> float64")
    parser.add_argument("--check-solve", action="store_true",
                        help="check each of DDR's sparse solves against a float64 substitution")  # fmt: skip
    parser.add_argument("--clamp-in-solve", action="store_true",
                        help="diagnostic: DDR's solve replaced by a float64 substitution that "
                        "floors each reach at Q_min before it flows downstream (the project's order)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    parser.add_argument("--dump", type=Path, default=None, help="save both trajectories (.npz)")
    args = parser.parse_args(argv)
    net = juniata(args.start, args.days)
    params = parameters(net["ids"].size, args.seed)
    ddr, used, info = run_ddr(args, net, params)
    started = time.perf_counter()
    ours = run_ours(args, net, params, used)[: ddr.shape[0]]
    info["ours_seconds"] = time.perf_counter() - started
    commit = subprocess.run(
        ["git", "--git-dir", str(args.ddr_git), "rev-parse", args.commit],
        check=False, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    result = {
        "ddr_commit": commit or args.commit, "geometry": args.geometry,
        "ddr_float64": args.float64, "clamp_in_solve": args.clamp_in_solve, "period": [str(net["dates"][0].date()), args.days],
        **compare(ours, ddr, net["ids"]), **info, "load": os.getloadavg(),
    }  # fmt: skip
    first = info.get("first_below_qmin_hour")
    if first is not None:  # the hours before DDR's first below-Q_min solution
        result["max_abs_diff_before_first_below_qmin_m3s"] = float(
            np.abs(ours[:first] - ddr[:first]).max()
        )
    print(json.dumps(result, indent=2))
    if args.dump:
        np.savez(args.dump, ddr=ddr, ours=ours, ids=net["ids"], **used)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
