#!/usr/bin/env bash
# The one check to run on a CUDA machine: the CUDA routing kernels against the numba engine
# (`pytest -m gpu`), then the GPU rows of docs/performance.md (benchmarks/routing.py --device cuda).
# Needs torch with CUDA and numba-cuda (`pip install -e ".[gpu]"` adds the NVVM/NVRTC wheels).
#   PYTHON=...   interpreter (default: .venv/bin/python when present, else python3)
#   RESULTS=dir  where logs and benchmark results go (default: benchmarks/results)
#   QUICK=1      short benchmark windows (smoke run)
# Every stage has its own time limit, so a hung kernel cannot hide the other results.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
RESULTS=${RESULTS:-benchmarks/results}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 DDR_BENCH_CASE_TIMEOUT_S=${DDR_BENCH_CASE_TIMEOUT_S:-300}
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
"$PYTHON" - <<'EOF'
import numba, numba_cuda, torch
print(f"python torch {torch.__version__} (cuda {torch.version.cuda}), numba {numba.__version__}, "
      f"numba-cuda {numba_cuda.__version__}, device {torch.cuda.get_device_name()}")
EOF

echo "== pytest -m gpu (kernels vs numba engine; CUDA tensors through every backend)"
timeout "${TEST_TIMEOUT_S:-420}" "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu -rs \
    tests/routing/test_cuda_kernel.py tests/routing/test_torch_backend.py \
    2>&1 | tee "$RESULTS/gpu-tests.log" || status=1

echo "== benchmarks/routing.py --device cuda"
timeout "${BENCH_TIMEOUT_S:-1500}" "$PYTHON" benchmarks/routing.py --device cuda ${QUICK:+--quick} \
    --out "$RESULTS/routing" 2>&1 | tee "$RESULTS/gpu-bench.log" || status=1
exit $status
