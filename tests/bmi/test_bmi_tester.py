"""CSDMS ``bmi-tester`` (BMI 2.0 conformance) on the DRB demo with the bundled checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

from bmi.helpers import config_dict, run_bmi_tester, write_config


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
    run_bmi_tester(stage)
