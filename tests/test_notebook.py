"""Execute notebooks/evaluation.ipynb on evaluation outputs of tiny synthetic data."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from pipelines.evaluation import synthetic as syn
from pipelines.evaluation import test_pipeline as runner

from ddr_pipeline.project.datasets import XarrayZarrDataset

ROOT = Path(__file__).parents[1]
RUN = "synthetic-run"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data/ folder with the evaluation outputs of the synthetic pipeline run."""
    data = tmp_path_factory.mktemp("data")
    out = runner.run_evaluation(tmp_path_factory.mktemp("work"))
    XarrayZarrDataset(filepath=str(data / "07_model_output" / RUN / "model_test.zarr")).save(
        out["evaluation.model_test"]
    )
    report = data / "08_reporting" / RUN / "evaluation"
    report.mkdir(parents=True)
    out["evaluation.metrics_per_gauge"].to_parquet(report / "metrics_per_gauge.parquet")
    out["evaluation.comparison"].to_csv(report / "comparison.csv", index=False)
    (data / "05_model_input" / "drb").mkdir(parents=True)
    syn.gauges_table().to_parquet(data / "05_model_input" / "drb" / "gauges.parquet")
    return data


def test_evaluation_notebook_runs(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("DDR_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DDR_RUN_NAME", RUN)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(ROOT / "notebooks" / "evaluation.ipynb", as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "gauges agree" in text
