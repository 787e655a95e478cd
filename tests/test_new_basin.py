"""A new basin needs no code edit: convert it, add a conf environment, run the pipelines.

The documented steps (docs/architecture.md, *Adding a basin*): a MERIT-style domain named
``tiny_basin`` is converted with the ingest adapters into ``data/01_raw/tiny_basin``, a
``conf/tiny_basin`` environment is added (here: the MERIT environment with the name changed),
and ``DDR_GEODATASET=tiny_basin`` builds the pipelines. Its parameters validate with the typed
configuration, and ``data_processing`` and ``training`` run on it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import yaml
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from test_continental_end_to_end import PERIODS, _merge, _relocate, _without_mlflow, make_merit

from ddr_pipeline import settings
from ddr_pipeline.config.pipelines import validate_parameters
from ddr_pipeline.data import io
from ddr_pipeline.pipelines import data_processing, training
from ddr_pipeline.pipelines.geodataset import ENV_VAR

CONF = Path(__file__).resolve().parents[1] / "conf"
NAME = "tiny_basin"


def convert_basin(raw: Path, src: Path) -> None:
    """Step 1: convert a MERIT-style domain (60 reaches, 8 gauges) into ``raw/tiny_basin``."""
    make_merit(raw, src, name=NAME)


def add_environment(conf: Path) -> None:
    """Step 2: a conf environment for the basin (the MERIT one, renamed)."""
    shutil.copytree(CONF, conf)
    (conf / NAME).mkdir()
    for source in (conf / "merit").glob("parameters_*.yml"):
        text = source.read_text().replace("merit", NAME)
        (conf / NAME / source.name).write_text(text)


def test_new_basin_runs_without_code_changes(tmp_path: Path, monkeypatch) -> None:
    convert_basin(tmp_path / "data" / "01_raw", tmp_path / "src")
    add_environment(tmp_path / "conf")
    loader = OmegaConfigLoader(
        conf_source=str(tmp_path / "conf"),
        **{**settings.CONFIG_LOADER_ARGS, "default_run_env": NAME},
        runtime_params={"run_name": "basin"},
    )
    params = loader["parameters"]
    overlay = yaml.safe_load((CONF / "test" / "parameters_training.yml").read_text())
    params = _relocate(_merge(params, {"training": overlay["training"]}), tmp_path)
    params["data_processing"]["periods"] = PERIODS
    params["training"]["experiment"].update(batch_size=4, rho=15, validation_every=None)
    configs = validate_parameters(params, ["data_processing", "training"])
    assert {c.geodataset for c in configs.values()} == {NAME}

    catalog_conf = {k: _without_mlflow(v) for k, v in loader["catalog"].items()}
    catalog = DataCatalog.from_config(_relocate(catalog_conf, tmp_path))
    for section, value in params.items():
        catalog[f"params:{section}"] = value
        for key, sub in value.items() if isinstance(value, dict) else ():
            catalog[f"params:{section}.{key}"] = sub

    monkeypatch.setenv(ENV_VAR, NAME)  # step 3: select it (as `DDR_GEODATASET=... kedro run`)
    SequentialRunner().run(data_processing.create_pipeline(), catalog)
    SequentialRunner().run(training.create_pipeline(), catalog)

    inputs = io.read_zarr(tmp_path / "data" / "05_model_input" / NAME / "model_inputs.zarr")
    assert inputs.sizes["reach_id"] == 60 and inputs.sizes["gage_id"] == 8
    history = catalog.load("training.history")
    assert len(history) >= 1 and np.isfinite(history["loss"]).all()
