"""Paths and configuration files of the BMI tests (bundled checkpoint, DRB demo reaches)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
#: Small trained checkpoint (DRB demo, env `test`; tests/bmi/assets/README.md).
CHECKPOINT = Path(__file__).parent / "assets" / "drb_tiny.pt"
REACHES = ROOT / "data" / "01_raw" / "drb" / "reaches.parquet"


def config_dict(processed: Path, start: str, end: str, **sections: Any) -> dict[str, Any]:
    """A component configuration on the processed DRB inputs with the bundled checkpoint."""
    config: dict[str, Any] = {
        "model": {"checkpoint": str(CHECKPOINT)},
        "network": {
            "model_inputs": str(processed / "model_inputs.zarr"),
            "normalization_stats": str(processed / "normalization_stats.json"),
            "reaches": str(REACHES),
        },
        "time": {"start": start, "end": end, "dt": 3600.0},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config


def write_config(folder: Path, config: dict[str, Any], name: str = "bmi.yaml") -> Path:
    """Write ``config`` as YAML into ``folder``; returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_bmi_tester(stage: Path, config_file: str = "bmi.yaml") -> None:
    """Run CSDMS ``bmi-tester`` on the staged component and assert that every stage passed,
    the unit checks included.

    This tree's sources come first on the path (a relative ``PYTHONPATH=src`` would not reach
    the stage folder, where bmi-tester runs).
    """
    command = [
        sys.executable, "-m", "bmi_tester", "ddr_pipeline.bmi:DdrRouting",
        "--root-dir", str(stage), "--config-file", config_file,
    ]  # fmt: skip
    path = os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KEDRO_DISABLE_TELEMETRY": "true",
           "PYTHONPATH": path}  # fmt: skip
    done = subprocess.run(command, cwd=stage, env=env, capture_output=True, text=True, check=False)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    assert "failed" not in report and " passed" in report
    assert "gimli.units is not installed" not in report  # the unit checks ran
