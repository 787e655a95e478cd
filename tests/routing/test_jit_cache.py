"""The routing kernels' numba cache is keyed on every routing source (routing/_jit.py).

numba revalidates a cached function against its own file only: a kernel that inlines a changed
function of another file would load stale machine code. Each scenario runs in fresh processes
(as an upgraded checkout would) on two-file packages: ``kernel.py`` calls ``physics.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest

from ddr_pipeline.routing import _jit
from ddr_pipeline.routing._jit import cache_dir, sources_digest

JIT = Path(_jit.__file__)

# Each package's decorator: the keyed one under test, or numba's plain cache as the control.
KEYED = """
import importlib.util
from pathlib import Path
spec = importlib.util.spec_from_file_location("keyed_jit", {jit!r})
jit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(jit)
def decorator(**options):
    return jit.keyed_njit(Path(__file__).parent, **options)
"""
PLAIN = """
import numba
def decorator(**options):
    return numba.njit(cache=True, **options)
"""
PHYSICS = """
from {package}.jit import decorator
@decorator(inline="always")
def physics(x):
    return x + {increment}
"""
KERNEL = """
from {package}.jit import decorator
from {package}.physics import physics
@decorator()
def kernel(x):
    return physics(x) * 2.0
"""
RUN = """
from keyed.kernel import kernel as keyed
from plain.kernel import kernel as plain
for kernel in (keyed, plain):
    print(kernel(1.0), sum(kernel.stats.cache_hits.values()))
"""


def _package(root: Path, name: str, decorator: str) -> Path:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jit.py").write_text(decorator.format(jit=str(JIT)))
    (package / "kernel.py").write_text(KERNEL.format(package=name))
    _set_physics(package, 1.0)
    return package


def _set_physics(package: Path, increment: float) -> None:
    (package / "physics.py").write_text(PHYSICS.format(package=package.name, increment=increment))


def _run(root: Path) -> list[tuple[float, int]]:
    """(kernel(1.0), cache hits) of the keyed and the plain package, in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(
        [sys.executable, "-c", RUN], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return [(float(v), int(h)) for v, h in (line.split() for line in out.stdout.splitlines())]


def test_changed_callee_recompiles_with_the_keyed_cache(tmp_path: Path) -> None:
    keyed = _package(tmp_path, "keyed", KEYED)
    plain = _package(tmp_path, "plain", PLAIN)
    assert _run(tmp_path) == [(4.0, 0), (4.0, 0)]  # compiled and cached
    assert _run(tmp_path) == [(4.0, 1), (4.0, 1)]  # the caches serve an unchanged checkout
    for package in (keyed, plain):  # the upgrade touches the callee's file only
        _set_physics(package, 10.0)
    # keyed: recompiled with the new physics; plain numba (the control): stale machine code
    assert _run(tmp_path) == [(22.0, 0), (4.0, 1)]
    assert len(list((keyed / "__pycache__").glob("keyed-*"))) == 2  # one per source version


def test_cache_dir_digest_covers_every_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "b.py").write_text("B = 1\n")
    first = cache_dir(tmp_path)
    assert first == tmp_path / "__pycache__" / f"{tmp_path.name}-{sources_digest(tmp_path)}"
    sources_digest.cache_clear()
    (tmp_path / "b.py").write_text("B = 2\n")
    assert cache_dir(tmp_path) != first
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "user"))
    assert cache_dir(tmp_path).parent == tmp_path / "user"  # NUMBA_CACHE_DIR stays the base


def test_routing_kernels_cache_under_the_keyed_dir() -> None:
    from ddr_pipeline.routing import _mc_kernels

    where = Path(_mc_kernels.forward_task.stats.cache_path)
    assert where.is_relative_to(cache_dir())
    assert cache_dir().name == f"routing-{sources_digest()}"
