"""CSDMS ``bmi-tester`` (BMI 2.0 conformance) on the DRB demo with the bundled checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from bmi.helpers import ROOT, config_dict, write_config


@pytest.mark.parametrize("assimilation", [False, True], ids=["plain", "assimilation"])
def test_bmi_tester_passes(tmp_path: Path, drb_processed: Path, assimilation: bool) -> None:
    """Every stage passes, the unit checks included (gimli.units parses every variable's unit),
    also with streamflow assimilation on (its observed-discharge input and correction output)."""
    import gimli.units  # noqa: F401  (bmi-tester skips its unit checks silently without it)

    stage = tmp_path / "stage"  # bmi-tester copies every file of the stage folder
    sections = {}
    if assimilation:
        with xr.open_zarr(drb_processed / "model_inputs.zarr") as ds:
            ids = [int(r) for r in ds["reach_id"].values[[3, 10]]]
        sections["assimilation"] = {"enabled": True, "reach_ids": ids}
    write_config(stage, config_dict(drb_processed, "1980-01-01", "1980-01-10", **sections))
    command = [
        sys.executable, "-m", "bmi_tester", "ddr_pipeline.bmi:DdrRouting",
        "--root-dir", str(stage), "--config-file", "bmi.yaml",
    ]  # fmt: skip
    # this tree's sources first: a relative PYTHONPATH=src would not reach the stage folder
    path = os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KEDRO_DISABLE_TELEMETRY": "true",
           "PYTHONPATH": path}  # fmt: skip
    done = subprocess.run(command, cwd=stage, env=env, capture_output=True, text=True, check=False)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    assert "failed" not in report and " passed" in report
    assert "gimli.units is not installed" not in report
