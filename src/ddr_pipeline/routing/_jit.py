"""``numba.njit`` for the routing kernels, with an on-disk cache keyed on the routing sources.

numba's cache (``cache=True``) revalidates a compiled function against the source of the file
that defines it only. The kernels in ``_mc_kernels.py`` inline the physics of ``_physics.py`` and
freeze the module constants of ``constants.py`` into their machine code, so after an upgrade that
changes only those files an existing checkout would keep loading the old compiled physics. Every
routing kernel is therefore cached in a directory named after a digest of all routing sources
and of the parameter registry, where the floors in ``constants.py`` come from (:func:`cache_dir`):
any change to any of them compiles afresh, in a new directory.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba

ROUTING_SOURCES = Path(__file__).resolve().parent
#: Sources outside the routing package whose values the kernels freeze (the default floors).
FROZEN_SOURCES = (ROUTING_SOURCES.parent / "parameter_registry.py",)


@functools.cache
def sources_digest(directory: Path = ROUTING_SOURCES) -> str:
    """Short SHA-256 of the names and contents of the ``*.py`` files in ``directory`` (read once
    per process: the code imported is the code read)."""
    digest = hashlib.sha256()
    for path in [*sorted(directory.glob("*.py")), *FROZEN_SOURCES]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_dir(directory: Path = ROUTING_SOURCES) -> Path:
    """Where the kernels of ``directory`` are cached: ``<base>/<directory name>-<digest>``.

    ``<base>`` is ``NUMBA_CACHE_DIR`` when set, else the sources' ``__pycache__`` when writable
    (numba's own default), else ``$XDG_CACHE_HOME/ddr_pipeline`` (``~/.cache/ddr_pipeline``).
    """
    if numba.config.CACHE_DIR:
        base = Path(numba.config.CACHE_DIR)
    elif os.access(directory, os.W_OK):
        base = directory / "__pycache__"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ddr_pipeline"
    return base / f"{directory.name}-{sources_digest(directory)}"


def keyed_njit(
    directory: Path = ROUTING_SOURCES, **options: Any
) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(cache=True, **options)`` whose cache lives in :func:`cache_dir` ``(directory)``.

    numba reads its cache directory when a function is decorated, so the directory is set for
    the decoration only and the process's own setting is restored right after.
    """
    where = str(cache_dir(directory))

    def decorate(function: Callable[..., Any]) -> Any:
        previous = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = where
        try:
            return numba.njit(cache=True, **options)(function)
        finally:
            numba.config.CACHE_DIR = previous

    return decorate


def njit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """:func:`keyed_njit` for the routing package's own kernels."""
    return keyed_njit(ROUTING_SOURCES, **options)
