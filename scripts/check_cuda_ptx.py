"""Compile the CUDA routing kernels to PTX without a GPU (type inference, lowering and NVVM).

Usage (needs the ``gpu`` extra: ``pip install -e .[gpu]``, i.e. the NVVM and NVRTC wheels):

    NUMBA_FORCE_CUDA_CC=9.0 .venv/bin/python scripts/check_cuda_ptx.py [--cc 9.0] [--out DIR]

Checks that the kernels of ``ddr_pipeline.routing._cuda_kernels``, including the physics of
``_physics.py`` recompiled as device functions, compile for the target architecture in float32
and float64, and prints the PTX size and the atomics/barriers used. It does not run them.
Without a GPU, numba-cuda asks the (missing) driver for the compute capability when it compiles
a device function; this script answers it with ``--cc`` (a development check, not library code).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import types
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _signatures(storage):
    """Argument types of the forward and backward kernels (order of ``_cuda_backend``)."""
    from numba import types as nt

    def a(dtype, ndim):
        return nt.Array(dtype, ndim, "C")

    f64, i64, b1, i8, i32 = nt.float64, nt.int64, nt.boolean, nt.int8, nt.int32
    st2, st1, tup = a(storage, 2), a(storage, 1), nt.UniTuple(a(storage, 2), 10)
    i1d, f1d, f2d = a(i64, 1), a(f64, 1), a(f64, 2)
    da = nt.Tuple((i1d, f2d, f1d, f1d, f2d, f1d))  # nudging (_mc_kernels._assimilate)
    lk = nt.Tuple((i1d, f2d, i1d, f2d, f2d, f2d, f2d))  # lakes (_mc_kernels._lake_forward)
    lka = nt.Tuple((f1d, f2d, f2d))  # the lakes' adjoint (λ_H, dense dL/dH, parameter grads)
    fwd = (st2, i64, st1, b1, tup, a(i64, 1), f64, b1, a(f64, 1), *[a(i64, 1)] * 9, a(i8, 1),
           a(i64, 1), a(i64, 1), st2, a(f64, 2), a(f64, 1), a(f64, 1), a(f64, 2), a(i32, 1),
           a(i32, 1), da, lk)  # fmt: skip
    bwd = (st2, a(f64, 2), st1, a(i64, 1), a(i64, 1), st2, st2, i64, st1, b1, tup, a(i64, 1),
           f64, b1, a(f64, 1), *[a(i64, 1)] * 9, a(i8, 1), a(i64, 1), a(f64, 1), st2, tup,
           a(f64, 1), a(f64, 2), a(f64, 1), a(f64, 1), a(f64, 2), a(f64, 2), a(i32, 1),
           a(i32, 1), lk, lka)  # fmt: skip
    return fwd, bwd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cc", default=os.environ.get("NUMBA_FORCE_CUDA_CC", "9.0"))
    ap.add_argument("--out", help="folder for the .ptx files")
    args = ap.parse_args()
    cc = tuple(int(x) for x in args.cc.split("."))
    os.environ.setdefault("NUMBA_FORCE_CUDA_CC", args.cc)
    import numba.cuda.dispatcher
    from numba import cuda
    from numba import types as nt

    if not cuda.is_available():  # no driver: answer the compute-capability query ourselves
        numba.cuda.dispatcher.get_current_device = lambda: types.SimpleNamespace(
            compute_capability=cc
        )
    from ddr_pipeline.routing import _cuda_kernels as kern

    for storage in (nt.float32, nt.float64):
        for name, sig in zip(("forward", "backward"), _signatures(storage), strict=True):
            kernel = getattr(kern, f"mc_{name}_kernel")
            t0 = time.perf_counter()
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
            ops = Counter(re.findall(r"\b(atom\.[\w.]+|bar\.sync|membar\.\w+)", ptx))
            print(f"{name:8s} {storage}: {len(ptx):,} chars of PTX for sm_{cc[0]}{cc[1]} "
                  f"in {time.perf_counter() - t0:.0f} s; {dict(sorted(ops.items()))}")  # fmt: skip
            if args.out:
                Path(args.out).mkdir(parents=True, exist_ok=True)
                Path(args.out, f"mc_{name}_{storage}.ptx").write_text(ptx)


if __name__ == "__main__":
    main()
