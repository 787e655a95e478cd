"""The DRB demo inputs, processed once per test session for the BMI tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro_sessions import kedro_session_factory

from bmi.helpers import ROOT


@pytest.fixture(scope="session")
def drb_processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the DRB ``data_processing`` outputs (model_inputs.zarr, normalization_stats)."""
    tmp = tmp_path_factory.mktemp("bmi_drb")
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        kedro_session_factory(ROOT, tmp, monkeypatch) as create,
        create("ddr_pipeline_bmi_test") as session,
    ):
        session.run(pipeline_names=["data_processing"])
    return tmp / "data" / "model_input" / "drb"
