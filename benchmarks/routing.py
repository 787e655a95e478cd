"""Routing-engine benchmark: throughput (reach-steps/s) and peak memory, vs a DDR-style baseline.

Usage:
    .venv/bin/python benchmarks/routing.py [--quick] [--threads 1,2] [--device cpu|cuda]
        [--out benchmarks/results/routing]

``--device cpu`` (default): the numba engine (and the DDR-style baseline) on CPU tensors.
``--device cuda``: CUDA tensors routed by the CUDA kernels (``backend="cuda"``) and by what
``backend="auto"`` picks on a GPU machine today (the numba engine on the CPU, inputs moved once);
GPU peak memory is ``torch.cuda.max_memory_allocated``. Results go to ``<out>-cuda.*``.

Every case runs in its own subprocess (so the peak RSS is per case), after a 2-step warm-up call
(JIT / first-call costs), and is timed twice, best kept.
The baseline does what DDR does per step: coefficients by torch autograd, one
``scipy.sparse.linalg.spsolve_triangular`` on (I − diag(C1)·N) per step, backward by a custom
autograd Function solving the transposed system per step. It runs on a shortened window and is
extrapolated per reach-step (the result says so). Not a test: nothing here asserts timings.
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ddr_pipeline.network import RiverNetwork  # noqa: E402
from ddr_pipeline.routing import muskingum_cunge  # noqa: E402
from ddr_pipeline.routing._cpu_engine import layout  # noqa: E402
from ddr_pipeline.routing._threads import ENV_THREADS, routing_threads  # noqa: E402

DRB = ROOT / "data" / "01_raw" / "drb" / "reaches.parquet"


# ---------------------------------------------------------------- problem builders
def build_network(n: int, seed: int = 0) -> tuple[RiverNetwork, dict[str, np.ndarray], str]:
    """DRB reaches if ``n == 456`` and the parquet exists, else a random dendritic network."""
    if n == 456 and DRB.exists():
        import pandas as pd

        df = pd.read_parquet(DRB, columns=["id", "to_id", "length_m", "slope", "x"])
        net = RiverNetwork.from_ids(df["id"].to_numpy(), df["to_id"].to_numpy())
        chan = {
            "length": df["length_m"].to_numpy(float),
            "slope": df["slope"].to_numpy(float),
            "x": df["x"].to_numpy(float),
        }
        return net, chan, "DRB reaches.parquet"
    rng = np.random.default_rng(seed)
    # reach k drains into a nearby earlier reach: dendritic, local like real hydrofabrics
    parent = np.array([-1] + [int(rng.integers(max(0, k - 40), k)) for k in range(1, n)])
    parent[rng.random(n) < 0.002] = -1
    ids = np.arange(1, n + 1)
    to = np.where(parent >= 0, ids[np.maximum(parent, 0)], 0)
    perm = rng.permutation(n)
    net = RiverNetwork.from_ids(ids[perm], to[perm])
    chan = {
        "length": rng.uniform(500, 8000, n)[perm],
        "slope": rng.uniform(1e-4, 1e-2, n)[perm],
        "x": np.full(n, 0.3),
    }
    return net, chan, "random dendritic"


def build_inputs(n: int, t: int, dtype: torch.dtype, seed: int = 0, device: str = "cpu"):
    net, chan, kind = build_network(n, seed)
    g = torch.Generator().manual_seed(seed)
    days = -(-t // 24)
    qlat = (torch.rand(days, n, generator=g, dtype=dtype) * 5).repeat_interleave(24, 0)[:t]
    channel = {k: torch.as_tensor(v, dtype=dtype) for k, v in chan.items()}
    n_daily = 0.03 + 0.1 * torch.rand(days, n, generator=g, dtype=dtype)
    params = {
        "n": n_daily.repeat_interleave(24, 0)[:t].contiguous(),  # time-varying, like the LSTM
        "q_spatial": 0.2 + 0.6 * torch.rand(n, generator=g, dtype=dtype),
        "top_width": 5 + 100 * torch.rand(n, generator=g, dtype=dtype),
        "side_slope": 0.5 + 5 * torch.rand(n, generator=g, dtype=dtype),
    }
    move = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
    return net, qlat.to(device), move(channel), move(params), kind


# ---------------------------------------------------------------- DDR-style baseline
class _TriangularSolve(torch.autograd.Function):
    """DDR's TriangularSparseSolver on CPU: SciPy solve forward, transposed solve backward."""

    @staticmethod
    def forward(ctx, a_vals, b, crow, col, rows):  # noqa: PLR0917 (autograd signature)
        from scipy.sparse import csr_matrix
        from scipy.sparse.linalg import spsolve_triangular

        n = b.shape[0]
        a = csr_matrix((a_vals.detach().double().numpy(), col, crow), shape=(n, n))
        x = spsolve_triangular(a, b.detach().double().numpy(), lower=True)
        ctx.a, ctx.x, ctx.rows, ctx.col = a, x, rows, col
        return torch.from_numpy(x).to(b.dtype)

    @staticmethod
    def backward(ctx, g):
        from scipy.sparse.linalg import spsolve_triangular

        gb = spsolve_triangular(ctx.a.T.tocsr(), g.double().numpy(), lower=False)
        ga = -gb[ctx.rows] * ctx.x[ctx.col]
        return torch.from_numpy(ga).to(g.dtype), torch.from_numpy(gb).to(g.dtype), None, None, None


def _ddr_coefficients(q, n, qs, w, z, length, s0, x, dt=3600.0):  # noqa: PLR0917
    depth = torch.clamp(
        (q * n * (qs + 1) / (21.0 * torch.sqrt(s0))) ** (3 / (5 + 3 * qs)), min=0.01
    )
    b = torch.clamp(w - 2 * z * depth, min=0.01)
    area = (w + b) * depth / 2
    r = area / (b + 2 * depth * torch.sqrt(1 + z**2))
    c = 5 / 3 * torch.clamp(r ** (2 / 3) * torch.sqrt(s0) / n, 0.01, 15.0)
    k = length / c
    den = 2 * k * (1 - x) + dt
    return (
        (dt - 2 * k * x) / den,
        (dt + 2 * k * x) / den,
        (2 * k * (1 - x) - dt) / den,
        2 * dt / den,
    )


def ddr_baseline(net: RiverNetwork, qlat, channel, params):
    """Route with one sparse triangular solve per step (network in topological order)."""
    order = torch.as_tensor(net.topological_order)
    pos = np.empty(net.n_reaches, np.int64)
    pos[net.topological_order] = np.arange(net.n_reaches)
    has = net.downstream_index >= 0
    src = pos[np.flatnonzero(has)]
    dst = pos[net.downstream_index[has]]
    n_r = net.n_reaches
    # CSR of A = I - diag(C1) N: row i has the diagonal and its upstream columns
    rows = np.concatenate([np.arange(n_r), dst])
    cols = np.concatenate([np.arange(n_r), src])
    srt = np.lexsort((cols, rows))
    rows, cols = rows[srt], cols[srt]
    crow = np.zeros(n_r + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_r), out=crow[1:])
    is_diag = torch.as_tensor(rows == cols)
    rows_t = torch.as_tensor(rows)
    adj = torch.sparse_coo_tensor(
        np.vstack([dst, src]), torch.ones(len(src), dtype=qlat.dtype), (n_r, n_r)
    ).to_sparse_csr()
    p = {k: v[..., order] for k, v in {**channel, **params}.items()}
    ql = qlat[:, order]
    hot_vals = torch.where(is_diag, 1.0, -1.0).to(qlat.dtype)  # hot start: (I - N) Q0 = q'_0
    q = torch.clamp(_TriangularSolve.apply(hot_vals, ql[0], crow, cols, rows), min=1e-4)
    outs = [q]
    for t in range(ql.shape[0]):
        n_t = p["n"][t] if p["n"].ndim == 2 else p["n"]
        c1, c2, c3, c4 = _ddr_coefficients(q, n_t, p["q_spatial"], p["top_width"], p["side_slope"],
                                          p["length"], torch.clamp(p["slope"], min=1e-4), p["x"])  # fmt: skip
        a_vals = torch.where(is_diag, torch.ones_like(rows_t, dtype=q.dtype), -c1[rows_t])
        b = c2 * (adj @ q.unsqueeze(1)).squeeze(1) + c3 * q + c4 * ql[t]
        q = torch.clamp(_TriangularSolve.apply(a_vals, b, crow, cols, rows), min=1e-4)
        outs.append(q)
    return torch.stack(outs)


# ---------------------------------------------------------------- one case (subprocess)
def run_case(engine: str, n: int, t: int, dtype_name: str, repeats: int, device: str) -> dict:  # noqa: PLR0917
    dtype = getattr(torch, dtype_name)
    net, qlat, channel, params, kind = build_inputs(n, t, dtype, device=device)
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    on_gpu = device.startswith("cuda")
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)

    def route(grad: bool):
        p = leaves if grad else params
        if engine == "baseline":
            return ddr_baseline(net, qlat, channel, p)
        return muskingum_cunge(net, qlat, channel, p, backend=engine)

    # JIT / cache load (and, for the baseline, SciPy/autograd first-call costs) outside the timing
    warm = {k: (v[:2] if v.ndim == 2 else v) for k, v in leaves.items()}
    if engine == "baseline":
        ddr_baseline(net, qlat[:2], channel, warm).sum().backward()
    else:
        muskingum_cunge(net, qlat[:2], channel, warm, backend=engine).sum().backward()
    sync()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    fwd, fb = [], []
    for _ in range(repeats):
        with torch.no_grad():
            t0 = time.perf_counter()
            route(False)
            sync()
            fwd.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        route(True).sum().backward()
        sync()
        fb.append(time.perf_counter() - t0)
    rs = n * t
    return {
        "engine": engine, "device": device, "network": kind, "reaches": n, "steps": t,
        "dtype": dtype_name, "forward_s": min(fwd), "forward_backward_s": min(fb),
        "forward_reach_steps_per_s": rs / min(fwd), "forward_backward_reach_steps_per_s": rs / min(fb),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None,
        "load_avg_1min": os.getloadavg()[0],
        "threads": layout(n, t, routing_threads()).threads if engine in ("numba", "auto") else 1,
    }  # fmt: skip


class CaseFailed(RuntimeError):
    """A benchmark case's subprocess failed or ran past ``CASE_TIMEOUT_S``."""


CASE_TIMEOUT_S = float(os.environ.get("DDR_BENCH_CASE_TIMEOUT_S", "1800"))


def _spawn(  # noqa: PLR0917 (one argument per case field)
    engine: str, n: int, t: int, dtype: str, repeats: int, device: str = "cpu", *, threads: int = 1
) -> dict:
    cmd = [sys.executable, __file__, "--case", engine, str(n), str(t), dtype, str(repeats), device]
    env = {**os.environ, ENV_THREADS: str(threads)}
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env,
                             timeout=CASE_TIMEOUT_S)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise CaseFailed(
            f"{engine} {n} x {t} {dtype}: no result within {exc.timeout:.0f} s"
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise CaseFailed(f"{engine} {n} x {t} {dtype} failed:\n{exc.stderr[-3000:]}") from exc
    return json.loads(res.stdout.strip().splitlines()[-1])


def _machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next(
        (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")),
        "?",
    )
    return {"cpu": model, "nproc": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "numba": __import__("numba").__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}  # fmt: skip


def _table(rows: list[dict]) -> str:
    head = "| engine | device | threads | network | reaches × steps | fwd s | fwd rs/s | fwd+bwd s | fwd+bwd rs/s | peak RSS MB | peak GPU MB | load |"
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        note = " (extrapolated)" if r.get("extrapolated_from") else ""
        gpu = f"{r['peak_gpu_mb']:.0f}" if r.get("peak_gpu_mb") is not None else "–"
        lines.append(
            f"| {r['engine']}{note} | {r.get('device', 'cpu')} | {r.get('threads', 1)} | {r['network']} | "
            f"{r['reaches']:,} × {r['steps']:,} | {r['forward_s']:.2f} | {r['forward_reach_steps_per_s']:.3g} | "
            f"{r['forward_backward_s']:.2f} | {r['forward_backward_reach_steps_per_s']:.3g} | "
            f"{r['peak_rss_mb']:.0f} | {gpu} | {r['load_avg_1min']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="short windows (smoke run)")
    ap.add_argument("--torch-backend", action="store_true", help="also time backend='torch' (slow)")
    ap.add_argument(
        "--threads",
        default=f"1,{routing_threads()}",
        help="comma-separated thread counts for the numba cases (default: 1 and all)",
    )
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cpu: numba engine and baseline; cuda: CUDA kernels vs the auto policy")  # fmt: skip
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "routing"))
    ap.add_argument("--case", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        engine, n, t, dtype, reps, device = args.case
        print(json.dumps(run_case(engine, int(n), int(t), dtype, int(reps), device)))
        return
    full = 24 * 365 if not args.quick else 24 * 30
    if args.device == "cuda":
        _main_cuda(args, full)
        return
    cases = [
        ("numba", 456, full),
        ("numba", 10_000, full),
        ("numba", 100_000, 720 if not args.quick else 96),
    ]
    baseline = [(456, 720 if not args.quick else 96), (10_000, 48 if not args.quick else 12)]
    rows = []
    for engine, n, t in cases:
        for threads in sorted({int(x) for x in args.threads.split(",")}):
            rows.append(_spawn(engine, n, t, "float32", 2, threads=threads))
            print(_table(rows[-1:]).splitlines()[-1], flush=True)
    if args.torch_backend:
        rows.append(_spawn("torch", 456, 240, "float32", 1))
    for n, t in baseline:
        r = _spawn("baseline", n, t, "float32", 2)
        r["extrapolated_from"] = f"{n} × {t} steps"
        scale = full / t
        r.update(
            steps=full,
            forward_s=r["forward_s"] * scale,
            forward_backward_s=r["forward_backward_s"] * scale,
        )
        rows.append(r)
        print(_table(rows[-1:]).splitlines()[-1], flush=True)
    _write(args.out, rows)


def _main_cuda(args: argparse.Namespace, full: int) -> None:
    """CUDA tensors: the kernels (float32 and float64) and the auto policy (numba on the CPU)."""
    if not torch.cuda.is_available():
        raise SystemExit("--device cuda needs a CUDA device (none is visible to torch)")
    rows = []
    cases = [("cuda", 456, full, "float32"), ("cuda", 10_000, full, "float32"),
             ("cuda", 100_000, full if not args.quick else 720, "float32"),
             ("cuda", 100_000, 720, "float64"), ("auto", 456, full, "float32"),
             ("auto", 10_000, 720 if not args.quick else 96, "float32")]  # fmt: skip
    if args.torch_backend:
        cases.append(("torch", 456, 240, "float32"))
    for engine, n, t, dtype in cases:
        try:  # a failed or hung case (e.g. a kernel never run on this GPU before) must not hide the rest
            rows.append(_spawn(engine, n, t, dtype, 2, "cuda", threads=routing_threads()))
        except CaseFailed as exc:
            print(f"CASE FAILED: {exc}", flush=True)
            continue
        print(_table(rows[-1:]).splitlines()[-1], flush=True)
    _write(f"{args.out}-cuda", rows)


def _write(out_path: str, rows: list[dict]) -> None:
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": _machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": rows,
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out.with_suffix(".json"))
    md = f"{_table(rows)}\n\nmachine: {result['machine']}\n"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(md)
    tmp.replace(out.with_suffix(".md"))
    print(md)


if __name__ == "__main__":
    main()
