"""Training-step benchmark: CPU time per stage and peak RSS of one mini-batch.

One step = collation, KAN, LSTM, parameter assembly, routing forward, loss, routing backward,
the networks' backward and an Adam step. Stages are separated by cutting the autograd graph at
the network outputs and at the physical parameters (the gradients are handed on explicitly), so
each backward is timed on its own; "KAN", "LSTM" and "assembly" are forward + backward.

Cases (``--case``, repeatable; default: every case below but ``2k-demo``):

* ``drb``: the DRB demo batch size (456 reaches of ``data/01_raw/drb/reaches.parquet``, 16 gauges,
  180 days) with synthetic inputs;
* ``<N>k-demo`` / ``<N>k-ddr`` (N in 10, 20, 50): a synthetic dendritic network of N thousand
  reaches in 16 basins, 64 gauges (the 16 outlets + 48 inner reaches, whose upstream union is
  every reach), 365 days; ``demo`` = the demo networks (KAN grid 5 / k 3, LSTM 32), ``ddr`` =
  DDR's sizes (KAN grid 50 / k 2, LSTM 64). Both: 10 attributes, 3 forcings, the
  routing options of conf/base (leakance off).

``--device cuda`` runs the KAN, the LSTM, the parameter assembly, the loss and the optimiser on
the GPU; the routing follows :func:`ddr_pipeline.routing.muskingum_cunge.choose_backend` (the
numba engine on the CPU until the CUDA kernels are verified; the table names the backend). On
CUDA the stage times are wall seconds after ``torch.cuda.synchronize`` and the GPU peak is
``torch.cuda.max_memory_allocated``; on the CPU they are CPU seconds. ``--quick`` (a smoke run in
seconds on a CPU) defaults the cases to ``drb`` and ``2k-demo`` and shortens every window to
``--days`` (30 unless given).

``--lstm-groups G`` runs the LSTM on at most G sequences (``cuda_lstm.sequence_groups``: reaches
grouped by k-means on their static attributes; the LSTM stage then includes the grouping).

``--nan-fill`` turns deterministic mode's NaN fill of new buffers back on (the code's default
before issue 11) to measure what switching it off saved.

``--engine lean`` (default) runs the current training path (daily inputs, means at the gauge
reaches, the memory plan of ``--budget-gb``); ``--engine legacy`` runs the previous one (hourly
expansion of Q′ and of the daily parameters, dense (T+1, N) states, ``daily_mean``; deterministic
fill as the code under test sets it). ``--src DIR`` imports ``ddr_pipeline`` from another
checkout (``git worktree add /tmp/before <commit>``) for before/after runs of old code
(``--engine legacy`` only). Every case runs in its own subprocess (peak RSS = its
``ru_maxrss``), after a warm-up step on a 300-reach, 12-day problem with the same options (JIT
compilation and first-call costs excluded). Times are ``time.process_time`` (CPU seconds of all threads) and wall seconds.
Not a test: nothing here asserts timings.

Usage:
    .venv/bin/python benchmarks/training_step.py --quick [--device cuda]
    .venv/bin/python benchmarks/training_step.py --case 10k-demo --threads 1 [--budget-gb 16]
    .venv/bin/python benchmarks/training_step.py --case drb --case 20k-demo --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DRB_REACHES = ROOT / "data" / "01_raw" / "drb" / "reaches.parquet"
STAGES = ("collation", "KAN", "LSTM", "assembly", "routing_fwd", "loss", "routing_bwd", "optimiser")
NETS = {
    "demo": {"grid": 5, "k": 3, "lstm": 32},
    "ddr": {"grid": 50, "k": 2, "lstm": 64},
}
ATTRIBUTES = [f"a{i}" for i in range(10)]
FORCINGS = ["P", "PET", "Temp"]


def parse_case(name: str, days: int | None = None) -> dict[str, Any]:
    """``drb`` or ``<N>k-<nets>`` -> reaches, gauges, days (``days`` overrides), nets."""
    if name == "drb":
        case = {"name": name, "reaches": 456, "gauges": 16, "days": 180, "nets": "demo"}
    else:
        size, _, nets = name.partition("-")
        if not size.endswith("k") or not size[:-1].isdigit() or nets not in NETS:
            raise SystemExit(f"unknown case {name!r}: use drb or <N>k-demo / <N>k-ddr")
        case = {"name": name, "reaches": int(size[:-1]) * 1000, "gauges": 64, "days": 365,
                "nets": nets}  # fmt: skip
    if days is not None:
        case["days"] = days
    return case


# ---------------------------------------------------------------- problem
def _network(n: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    if n == 456 and DRB_REACHES.exists():
        import pandas as pd

        df = pd.read_parquet(DRB_REACHES, columns=["id", "to_id", "length_m", "slope"])
        ids, to = df["id"].to_numpy(np.int64), df["to_id"].to_numpy(np.int64)
        length, slope = df["length_m"].to_numpy(np.float32), df["slope"].to_numpy(np.float32)
        return ids, to, length, slope
    starts = np.linspace(0, n, 16, endpoint=False).astype(int)  # 16 basins
    basin_start = starts[np.searchsorted(starts, np.arange(n), side="right") - 1]
    low = np.maximum(basin_start, np.arange(n) - 40)
    parent = np.where(
        np.arange(n) == basin_start, -1, low + (rng.random(n) * (np.arange(n) - low)).astype(int)
    )  # each reach drains into one of the 40 previous reaches of its basin
    ids = np.arange(1, n + 1, dtype=np.int64)
    to = np.where(parent >= 0, ids[np.maximum(parent, 0)], 0)
    perm = rng.permutation(n)
    length = rng.uniform(500, 8000, n).astype(np.float32)
    slope = rng.uniform(1e-4, 1e-2, n).astype(np.float32)
    return ids[perm], to[perm], length[perm], slope[perm]


def build_inputs(case: dict[str, Any], seed: int = 0):
    """Synthetic ``ModelInputs`` of the case and the ``GaugeSet`` of its batch."""
    import numpy as np
    import pandas as pd

    from ddr_pipeline.data.containers import GaugeSet, ModelInputs
    from ddr_pipeline.network import RiverNetwork

    rng = np.random.default_rng(seed + 1)
    ids, to, length, slope = _network(case["reaches"], seed)
    n, days, g = ids.size, case["days"], case["gauges"]
    net = RiverNetwork.from_ids(ids, to)
    outlets = np.flatnonzero(net.downstream_index < 0)
    inner = rng.choice(np.setdiff1d(np.arange(n), outlets), g - min(g, outlets.size), replace=False)
    gauge_reaches = np.concatenate([outlets[:g], inner])[:g]
    attributes = rng.standard_normal((n, len(ATTRIBUTES))).astype(np.float32)
    inputs = ModelInputs(
        reach_ids=ids,
        network=net,
        channel={"length": length, "slope": slope, "x": np.full(n, 0.3, np.float32)},
        observed_geometry={},
        attributes=attributes,
        attributes_raw=np.abs(attributes) * 20 + 10,
        attribute_names=tuple(ATTRIBUTES),
        forcings=rng.standard_normal((days, n, len(FORCINGS))).astype(np.float32),
        forcing_names=tuple(FORCINGS),
        lateral_inflow=rng.uniform(0.05, 3.0, (days, n)).astype(np.float32),
        observations=rng.uniform(1.0, 500.0, (days, g)).astype(np.float32),
        gage_ids=tuple(f"g{i}" for i in range(g)),
        dates=pd.date_range("2000-01-01", periods=days, freq="D"),
    )
    gauges = GaugeSet(
        staids=inputs.gage_ids,
        reach_index=tuple(np.array([r]) for r in gauge_reaches),
        obs_column=np.arange(g),
    )
    return inputs, gauges


def training_config(  # noqa: PLR0913 (the case and the run's options)
    case: dict[str, Any],
    budget_gb: float | None,
    threads: int | None,
    root: Path = ROOT,
    device: str = "cpu",
    *,
    lstm_groups: int | None = None,
):
    """The training configuration of the checkout at ``root`` with the case's network sizes."""
    import yaml

    from ddr_pipeline.config.training import load_training_config

    raw = yaml.safe_load((root / "conf" / "base" / "parameters_training.yml").read_text())
    params = raw["training"]
    params["run_name"] = "bench"
    nets = NETS[case["nets"]]
    params["kan"].update(grid=nets["grid"], k=nets["k"], input_var_names=ATTRIBUTES)
    params["cuda_lstm"].update(
        hidden_size=nets["lstm"], input_var_names=ATTRIBUTES, forcing_var_names=FORCINGS
    )
    if lstm_groups is not None:
        params["cuda_lstm"]["sequence_groups"] = lstm_groups
    params["params"]["ptf_sand_var"] = None
    params["params"]["ptf_clay_var"] = None
    params["params"]["observed_geometry"] = []
    exp = params["experiment"]
    exp.update(batch_size=case["gauges"], rho=case["days"], device=device)
    exp["warmup"] = min(exp.get("warmup", 0), case["days"] // 2)
    extra = {"memory_budget_gb": budget_gb, "threads": threads}
    try:
        return load_training_config({**params, "experiment": {**exp, **extra}})
    except Exception:  # code without these keys (--src of an older checkout)
        return load_training_config(params)


# ---------------------------------------------------------------- one step
class Clock:
    """CPU / wall seconds and running peak RSS per stage (``sync``: wait for the device)."""

    def __init__(self, sync=lambda: None) -> None:  # noqa: ANN001
        self.sync = sync
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}

    def run(self, stage: str, fn, *args, **kwargs):
        self.sync()
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        self.sync()
        self.cpu[stage] = self.cpu.get(stage, 0.0) + time.process_time() - c0
        self.wall[stage] = self.wall.get(stage, 0.0) + time.perf_counter() - w0
        self.peak_mb[stage] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return out


def backend(settings: Any, device: str) -> str:
    """The routing backend that ``settings`` pick for tensors on ``device``."""
    import torch

    try:
        from ddr_pipeline.routing.muskingum_cunge import choose_backend
    except ImportError:  # an older checkout (--src)
        return "numba"
    chosen = settings.engine_options().get("backend", "auto")
    return choose_backend(chosen, torch.device(device))


def _leaves(tensors: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().requires_grad_(v.requires_grad) for k, v in tensors.items()}


def _backward(outputs: dict[str, Any], leaves: dict[str, Any]) -> None:
    import torch

    pairs = [(outputs[k], leaves[k].grad) for k in outputs if leaves[k].grad is not None]
    if pairs:
        torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])


def one_step(  # noqa: PLR0913, PLR0915 (one stage after the other, on purpose)
    case: dict[str, Any],
    engine: str,
    budget_gb: float | None,
    threads: int | None,
    root: Path,
    *,
    device: str = "cpu",
    nan_fill: bool = False,
    lstm_groups: int | None = None,
):
    import numpy as np
    import torch

    from ddr_pipeline.models import NetworkOutputs, build_models
    from ddr_pipeline.models.rng import seed_everything
    from ddr_pipeline.routing import gather_gauges
    from ddr_pipeline.simulation import FeatureIndex, RoutingSettings
    from ddr_pipeline.simulation.batches import build_batch
    from ddr_pipeline.training.losses import routing_loss

    config = training_config(case, budget_gb, threads, root, device, lstm_groups=lstm_groups)
    seed_everything(0)
    if nan_fill:  # deterministic mode's NaN fill of new buffers (off since issue 11)
        torch.utils.deterministic.fill_uninitialized_memory = True
    if threads is not None:
        torch.set_num_threads(threads)
    on_gpu = device == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    inputs, gauges = build_inputs(case)
    model = build_models(config).to(device)
    model.train()
    features = FeatureIndex.from_names(config, inputs.attribute_names, inputs.forcing_names)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    clock = Clock(torch.cuda.synchronize if on_gpu else lambda: None)
    batch = clock.run(
        "collation",
        lambda: build_batch(inputs, gauges, list(range(len(gauges))), 0, case["days"]).to(device),
    )
    plan = None
    if engine == "lean":
        from ddr_pipeline.training.resources import BatchSize, activation_cost, plan_step

        size = BatchSize(
            gauges=len(gauges), reaches=batch.network.n_reaches, days=case["days"],
            steps_per_day=24, forcings=len(FORCINGS), attributes=len(ATTRIBUTES),
            daily_parameters=len(config.cuda_lstm.learnable_parameters),
            lstm_sequences=model.lstm.sequences(batch.network.n_reaches),
        )  # fmt: skip
        plan = clock.run("plan", lambda: plan_step(size, activation_cost(model), budget_gb))
    optimiser.zero_grad(set_to_none=True)
    window = batch.window
    kan_out = clock.run("KAN", model.kan, window.attributes[:, features.kan.to(device)])
    forcings = window.forcings[:, :, features.lstm_forcings.to(device)]
    lstm_attributes = window.attributes[:, features.lstm_attributes.to(device)]
    kwargs = {} if plan is None else {"chunk_reaches": plan.lstm_chunk}
    lstm_out, _ = clock.run("LSTM", model.lstm, forcings, lstm_attributes, **kwargs)
    kan_leaf, lstm_leaf = _leaves(kan_out), _leaves(lstm_out)
    outputs = NetworkOutputs(static=kan_leaf, daily=lstm_leaf, state=None)
    params = clock.run("assembly", model.routing_parameters, outputs, batch.network.n_reaches)
    param_leaf = _leaves(params)
    settings = RoutingSettings.from_config(config)
    common = settings.engine_options()
    channel = settings.channel(window.channel)

    def route_lean():
        from ddr_pipeline.routing import muskingum_cunge_means
        from ddr_pipeline.simulation.rollout import observed_reaches

        reaches, columns = observed_reaches(batch.gauge_index)
        res = muskingum_cunge_means(
            batch.network, window.lateral_inflow, channel, param_leaf, reaches,
            checkpoint_every=plan.checkpoint_every, substeps=24, **common,
        )  # fmt: skip
        return gather_gauges(res.means, columns)

    def route_legacy():
        from ddr_pipeline.routing import daily_mean, muskingum_cunge, repeat_daily

        qlat = window.lateral_inflow
        if qlat.shape[0] == case["days"]:
            qlat = repeat_daily(qlat, 24)
        hourly = {k: repeat_daily(v, 24) if v.ndim == 2 else v for k, v in param_leaf.items()}
        q = muskingum_cunge(batch.network, qlat, channel, hourly, **common)
        return daily_mean(gather_gauges(q, batch.gauge_index), 24)

    daily = clock.run("routing_fwd", route_lean if engine == "lean" else route_legacy)
    loss = clock.run(
        "loss", routing_loss, daily, batch.observations, "mse", warmup=config.experiment.warmup
    )
    clock.run("routing_bwd", loss.backward)
    clock.run("assembly", _backward, params, param_leaf)
    clock.run("LSTM", _backward, lstm_out, lstm_leaf)
    clock.run("KAN", _backward, kan_out, kan_leaf)
    clock.run("optimiser", optimiser.step)
    assert all(
        np.isfinite(float(p.grad.abs().sum())) for p in model.parameters() if p.grad is not None
    )
    return {
        "case": case["name"], "engine": engine, "reaches": batch.network.n_reaches,
        "gauges": len(gauges), "days": case["days"], "nets": case["nets"],
        "checkpoint_every": None if plan is None else plan.checkpoint_every,
        "lstm_chunk": None if plan is None else plan.lstm_chunk,
        "lstm_groups": lstm_groups,
        "estimate_gib": None if plan is None else plan.estimate_bytes / 2**30,
        "device": device, "routing_backend": backend(settings, device),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None,
        "torch_threads": torch.get_num_threads(),
        "fill_uninitialized_memory": bool(torch.utils.deterministic.fill_uninitialized_memory),
        "cpu_s": clock.cpu, "wall_s": clock.wall, "peak_mb_after": clock.peak_mb,
        "cpu_total_s": sum(v for k, v in clock.cpu.items() if k != "plan"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


# ---------------------------------------------------------------- driver
def _child(args: argparse.Namespace) -> None:
    root = Path(args.src).resolve() if args.src else ROOT
    sys.path.insert(0, str(root / "src"))
    case = parse_case(args.child, args.days)
    warm_up = {**case, "name": "warm-up", "reaches": 300, "gauges": 4, "days": 12}
    run = (args.engine, args.budget_gb, args.threads, root)
    options = {"device": args.device, "nan_fill": args.nan_fill, "lstm_groups": args.lstm_groups}
    one_step(warm_up, *run, **options)  # JIT, first calls
    result = one_step(case, *run, **options)
    print("RESULT " + json.dumps(result))


def _run_case(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", name, "--engine", args.engine]
    cmd += ["--device", args.device]
    if args.days is not None:
        cmd += ["--days", str(args.days)]
    if args.nan_fill:
        cmd += ["--nan-fill"]
    if args.lstm_groups is not None:
        cmd += ["--lstm-groups", str(args.lstm_groups)]
    if args.budget_gb is not None:
        cmd += ["--budget-gb", str(args.budget_gb)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    if args.src:
        cmd += ["--src", args.src]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        return {"case": name, "engine": args.engine, "error": proc.stderr.strip()[-2000:]}
    result = json.loads(lines[-1][len("RESULT ") :])
    result["load_before"] = load
    return result


def _table(results: list[dict[str, Any]]) -> str:
    head = [
        "case",
        "engine",
        "device (routing)",
        "reaches",
        "days",
        "k",
        "LSTM chunk",
        "LSTM groups",
        *STAGES,
        "step s",
        "peak RSS GiB",
        "peak GPU GiB",
        "load",
    ]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if "error" in r:
            rows.append(
                f"| {r['case']} | {r['engine']} | error: {r['error'].splitlines()[-1] if r['error'] else '?'} |"
            )
            continue
        device = r.get("device", "cpu")
        times = r["wall_s"] if device == "cuda" else r["cpu_s"]  # CUDA: wall after sync
        gpu = r.get("peak_gpu_mb")
        engine = r["engine"] + (" +NaN fill" if r.get("fill_uninitialized_memory") else "")
        cells = [r["case"], engine, f"{device} ({r.get('routing_backend', 'numba')})",
                 f"{r['reaches']:,}", str(r["days"]), str(r["checkpoint_every"] or "-"),
                 str(r["lstm_chunk"] or "-"), str(r.get("lstm_groups") or "-")]  # fmt: skip
        cells += [f"{times.get(s, 0.0):.1f}" for s in STAGES]
        cells += [
            f"{sum(v for k, v in times.items() if k != 'plan'):.1f}",
            f"{r['peak_rss_mb'] / 1024:.2f}",
            "-" if gpu is None else f"{gpu / 1024:.2f}",
            f"{r['load_before']:.1f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", action="append", help="drb, 10k-demo, 20k-demo, 50k-ddr, ...")
    parser.add_argument("--engine", choices=("lean", "legacy"), default="lean")
    parser.add_argument("--budget-gb", type=float, default=None, help="memory budget (lean)")
    parser.add_argument("--threads", type=int, default=1, help="torch/routing threads (default 1)")
    parser.add_argument("--src", default=None, help="checkout whose src/ to import (legacy)")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where the networks, loss and optimiser run (routing: auto policy)",
    )
    parser.add_argument("--quick", action="store_true", help="drb + 2k-demo, 30-day windows")
    parser.add_argument("--days", type=int, default=None, help="window length of every case")
    parser.add_argument(
        "--nan-fill", action="store_true", help="NaN-fill new buffers (the pre-issue-11 default)"
    )
    parser.add_argument(
        "--lstm-groups", type=int, default=None, help="cuda_lstm.sequence_groups (default: none)"
    )
    parser.add_argument("--json", default=None, help="append the results to this JSON file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.src and args.engine != "legacy":
        parser.error("--src needs --engine legacy (older checkouts lack the lean path)")
    if args.days is not None and args.days < 2:
        parser.error("--days must be at least 2")
    if args.child:
        _child(args)
        return
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda needs a CUDA device (none is visible to torch)")
    if args.quick and args.days is None:
        args.days = 30
    cases = args.case or (
        ["drb", "2k-demo"]
        if args.quick
        else ["drb", "10k-demo", "20k-demo", "10k-ddr", "20k-ddr", "50k-ddr"]
    )
    results = []
    for name in cases:
        parse_case(name)
        results.append(_run_case(name, args))
        print(_table(results[-1:]).splitlines()[-1], flush=True)
    gpu = ""
    if args.device == "cuda":
        import torch

        gpu = f", GPU {torch.cuda.get_device_name()}"
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs{gpu}, "
          f"python {platform.python_version()}; src: {args.src or 'this checkout'}; "
          f"times: {'wall' if args.device == 'cuda' else 'CPU'} s")  # fmt: skip
    print(_table(results))
    if args.json:
        path = Path(args.json)
        previous = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps(previous + results, indent=1))


if __name__ == "__main__":
    main()
