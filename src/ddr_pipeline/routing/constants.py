"""Documented physical floors and defaults of the routing engine (docs/routing.md)."""

from __future__ import annotations

from ddr_pipeline.parameter_registry import BY_NAME, FLOORS

Q_MIN: float = FLOORS["discharge"]
"""Discharge floor (m³/s) applied after every Muskingum–Cunge step and to the initial state."""
D_MIN: float = FLOORS["depth"]
"""Depth floor (m)."""
B_MIN: float = FLOORS["bottom_width"]
"""Bottom-width floor (m)."""
V_MIN: float = FLOORS["velocity"]
"""Velocity lower clamp (m/s) before the celerity factor 5/3."""
V_MAX: float = 15.0
"""Velocity upper clamp (m/s)."""
S_MIN: float = FLOORS["slope"]
"""Bed-slope floor (m/m)."""
H_BANK_MIN: float = 0.1
"""Lower clamp of the bank height W/(2z) used by leakance (m)."""
H_BANK_MAX: float = 10.0
"""Upper clamp of the bank height W/(2z) used by leakance (m)."""
X_MIN: float = 0.0
"""Lower clamp of Cunge's X (``x_mode="cunge"``): no negative X (C1 ≥ 0 needs Δt ≥ 2KX only)."""
X_MAX: float = 0.5
"""Upper clamp of Cunge's X (``x_mode="cunge"``)."""
X_MODES: tuple[str, ...] = ("data", "cunge")
"""Muskingum X: from the channel data (``data``) or from the flow (``cunge``, docs/routing.md)."""
CELERITIES: tuple[str, ...] = ("wide_rectangle", "exact")
"""Kinematic celerity: 5/3·v (``wide_rectangle``) or dQ/dA of the trapezoid (``exact``)."""
GEOMETRIES: tuple[str, ...] = ("learned", "ddr")
"""Channel top width and side slope: from the parameters (``learned``) or DDR's derivation from
the depth each step (``ddr``: W = p·d^q, z = clamp(W·q/(2d), 0.5, 50), docs/routing.md)."""
P_DEFAULT: float = float(BY_NAME["p_spatial"].default or 0.0)
"""Default width coefficient p of the power-law rating."""
DT_DEFAULT: float = 3600.0
"""Default routing step (s)."""
PARALLEL_MIN_REACHES: int = 256
"""Networks with fewer reaches run the CPU engine on one thread (docs/performance.md, *Task-parallel
CPU engine*: below this the second thread does not pay)."""
PARALLEL_MIN_REACH_STEPS: int = 100_000
"""Calls with fewer reach-steps run on one thread: the threaded path's fixed cost per call
(starting the worker threads, ≈ 0.2 ms measured) stays below ≈ 5 % of the work above this."""
CPU_BLOCK_MIN_REACHES: int = 128
"""Fewest reaches in one block of the task-parallel CPU engine (``_cpu_plan``)."""
CPU_BLOCKS_PER_THREAD: int = 4
"""Blocks per thread of the task-parallel CPU engine: slack for the dynamic scheduler."""
CPU_CHUNK_STEPS: int = 64
"""Time steps per task of the task-parallel CPU engine (a task = one block over one chunk)."""
CUDA_BLOCK_REACHES: int = 128
"""Most reaches in one thread block of the CUDA kernels (one thread per reach; docs/routing.md)."""
CUDA_BLOCK_LEVELS: int = 32
"""Most topological levels in one thread block of the CUDA kernels (barriers per step)."""
CUDA_KERNEL_VERIFIED: bool = True
"""Whether the CUDA kernels were verified on a real GPU (``pytest -m gpu`` and
``benchmarks/routing.py --device cuda`` on an H200, 2026-11-29: values and gradients equal the
numba engine's, faster than the CPU engine at every measured size; docs/performance.md). When
False, ``backend="auto"`` routes CUDA tensors with the numba engine on the CPU."""
CUDA_LAKES_VERIFIED: bool = False
"""Whether the CUDA kernels' level-pool lakes were verified on a real GPU. Until then
``backend="auto"`` routes a call with lakes on the numba engine even for CUDA tensors (the
lakes are tested in the CUDA simulator and type-check and lower for sm_90; ``backend="cuda"``
runs them on request)."""
