#!/usr/bin/env bash
# One short session on a CUDA machine (issue 12): the CUDA routing kernels against the numba
# engine (`pytest -m gpu`), then the GPU benchmark rows of docs/performance.md.
# Needs: a CUDA build of torch in .venv and `pip install -e ".[gpu]"`. QUICK=1 for short windows.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
.venv/bin/python -m pytest -q -p no:cacheprovider -m gpu tests/routing
.venv/bin/python benchmarks/routing.py --device cuda ${QUICK:+--quick}
