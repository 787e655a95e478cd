"""The Kedro CLI works on the project: ``kedro registry list`` and ``kedro viz build``.

``kedro viz build`` takes several seconds; set ``DDR_SKIP_VIZ=1`` to skip it locally (CI runs it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KEDRO = str(Path(sys.executable).with_name("kedro"))


def _kedro(project_root: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    return subprocess.run(
        [KEDRO, *args], cwd=project_root, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def test_registry_list(project_root: Path):
    result = _kedro(project_root, "registry", "list")
    assert result.returncode == 0, result.stderr
    names = {line.strip("- ").strip() for line in result.stdout.splitlines()}
    assert {"__default__", "data_processing"} <= names


@pytest.mark.skipif(os.environ.get("DDR_SKIP_VIZ") == "1", reason="DDR_SKIP_VIZ=1")
def test_viz_build(project_root: Path):
    result = _kedro(project_root, "viz", "build")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project_root / "build" / "index.html").exists()
    assert (project_root / "build" / "api" / "main").exists()
