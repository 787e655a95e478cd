"""Continental geodatasets run through the same pipelines as the DRB demo.

A generated MERIT-Basins domain and the real hydrofabric fixture (``gauge_01069700.gpkg``) with
generated time series are converted with the adapters into a tmp schema folder, then the
``data_processing``, ``training`` and ``evaluation`` pipelines run with Kedro's SequentialRunner on
a catalog built from the project's ``conf/`` (environment ``merit`` / ``lynker_hydrofabric`` plus
the tiny ``conf/test`` overlays), with every file path moved into tmp.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from data.generators import (
    daily_store,
    dendritic_network,
    write_gauge_csv,
    write_merit_shapefile,
    write_zarr_store,
)
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from ddr_pipeline import settings
from ddr_pipeline.data import io
from ddr_pipeline.ingest import hydrofabric, merit, stores
from ddr_pipeline.pipelines import data_processing, evaluation, training

CONF = Path(__file__).resolve().parents[1] / "conf"
FIXTURE = Path(__file__).parent / "data" / "hydrofabric" / "gauge_01069700.gpkg"
RUN = "e2e"
START, DAYS = "2000-01-01", 120
PERIODS = {"train": ["2000-01-01", "2000-02-29"], "test": ["2000-03-01", "2000-04-29"]}
ATTRIBUTES = {
    "merit": [
        "SoilGrids1km_clay",
        "aridity",
        "meanelevation",
        "meanP",
        "NDVI",
        "meanslope",
        "log10_uparea",
        "SoilGrids1km_sand",
        "ETPOT_Hargr",
        "Porosity",
    ],
}
ATTRIBUTES["lynker_hydrofabric"] = [
    "log_uparea" if a == "log10_uparea" else a for a in ATTRIBUTES["merit"]
]


# --------------------------------------------------------------------------- inputs


def _attribute_values(names: list[str], n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: rng.uniform(10.0, 40.0, n) if name.startswith("SoilGrids") else rng.normal(0, 1, n)
        for name in names
    }


def _write_time_series(folder: Path, reach_ids: np.ndarray, staids: list[str], src: Path) -> None:
    """Generate Qr, streamflow and forcing stores and convert them with ``write_domain_stores``."""
    qr = write_zarr_store(
        daily_store("Qr", "divide_id", reach_ids, START, DAYS, seed=1), src / "qr"
    )
    obs = daily_store("streamflow", "gage_id", np.array(staids, dtype=object), START, DAYS, seed=2)
    obs = write_zarr_store(obs, src / "obs")
    forcings = xr.merge(
        [
            daily_store("P", "divide_id", reach_ids, START, DAYS, units="mm/day", seed=3),
            daily_store("PET", "divide_id", reach_ids, START, DAYS, units="mm/day", seed=4),
            daily_store("Temp", "divide_id", reach_ids, START, DAYS, units="degC", seed=5),
        ]
    )
    forcings = write_zarr_store(forcings, src / "forcings")
    stores.write_domain_stores(
        folder,
        reach_ids,
        staids,
        lateral_inflow=stores.StoreSource(str(qr)),
        observations=stores.StoreSource(str(obs)),
        forcings=stores.StoreSource(str(forcings)),
    )


def make_merit(raw: Path, src: Path, name: str = "merit") -> None:
    """A 60-reach MERIT-Basins domain with 8 gauges, converted into ``raw/<name>``."""
    src.mkdir(parents=True)
    ids, to_ids = dendritic_network(60, n_basins=3, window=4, seed=5)
    comids = ids + 71_000_000
    to_comids = np.where(to_ids > 0, to_ids + 71_000_000, 0)
    write_merit_shapefile(src / "riv_pfaf_71.shp", comids, to_comids, seed=1)
    staids = [f"0{i}00000{i}" for i in range(1, 9)]
    write_gauge_csv(src / "gauges.csv", staids, comids[::7][:8].tolist(), FLOW_SCALE=[1.0] * 8)
    names = ATTRIBUTES["merit"]
    attrs = xr.Dataset(
        {k: ("COMID", v) for k, v in _attribute_values(names, comids.size, 7).items()},
        coords={"COMID": comids},
    )
    attrs.to_netcdf(src / "attributes.nc", engine="h5netcdf")
    tables = merit.convert_merit(
        src / "riv_pfaf_71.shp",
        src / "gauges.csv",
        attributes=src / "attributes.nc",
        attribute_names=names,
    )
    folder = raw / name
    tables.write(folder)
    _write_time_series(
        folder, tables.reaches["id"].to_numpy(), tables.gauges["STAID"].tolist(), src
    )


def make_hydrofabric(raw: Path, src: Path) -> None:
    """The real 3-flowpath fixture with generated divide attributes and time series."""
    src.mkdir(parents=True)
    names = ATTRIBUTES["lynker_hydrofabric"]
    divides = np.array([10236, 10237, 10245])
    table = pd.DataFrame({"divide_id": [f"cat-{d}" for d in divides]})
    table = table.assign(**_attribute_values(names, divides.size, 8))
    tables = hydrofabric.convert_hydrofabric(FIXTURE, attributes=table, attribute_names=names)
    folder = raw / "lynker_hydrofabric"
    tables.write(folder)
    _write_time_series(
        folder, tables.reaches["id"].to_numpy(), tables.gauges["STAID"].tolist(), src
    )


# --------------------------------------------------------------------------- configuration


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _relocate(config: Any, root: Path) -> Any:
    """Every relative ``filepath`` / ``path`` / ``models_dir`` of a config moved under ``root``."""
    if isinstance(config, dict):
        return {
            k: str(root / v)
            if k in {"filepath", "path", "models_dir"}
            and isinstance(v, str)
            and not Path(v).is_absolute()
            else _relocate(v, root)
            for k, v in config.items()
        }
    if isinstance(config, list):
        return [_relocate(v, root) for v in config]
    return config


def _without_mlflow(entry: dict[str, Any]) -> dict[str, Any]:
    """kedro-mlflow datasets replaced by what they wrap (metrics: kept in memory)."""
    kind = str(entry.get("type", ""))
    if kind.endswith("MlflowArtifactDataset"):
        return entry["dataset"]
    if kind.startswith("kedro_mlflow"):
        return {"type": "MemoryDataset"}
    return entry


def project_config(env: str, root: Path) -> tuple[DataCatalog, dict[str, Any]]:
    """The project's catalog and parameters for ``env`` (+ conf/test overlays), paths in ``root``."""
    loader = OmegaConfigLoader(
        conf_source=str(CONF),
        **{**settings.CONFIG_LOADER_ARGS, "default_run_env": env},
        runtime_params={"run_name": RUN},
    )
    params = loader["parameters"]
    for name in ("training", "evaluation"):
        overlay = yaml.safe_load((CONF / "test" / f"parameters_{name}.yml").read_text())
        params = _merge(params, overlay)
    params = _relocate(params, root)
    params["data_processing"]["periods"] = PERIODS
    params["evaluation"].update(period=None, warmup_days=5)
    params["training"]["experiment"].update(batch_size=4, rho=15, validation_every=None)
    catalog_conf = {k: _without_mlflow(v) for k, v in loader["catalog"].items()}
    catalog = DataCatalog.from_config(_relocate(catalog_conf, root))
    catalog["parameters"] = params
    for section, value in params.items():
        catalog[f"params:{section}"] = value
        if isinstance(value, dict):
            for key, sub in value.items():
                catalog[f"params:{section}.{key}"] = sub
    return catalog, params


# --------------------------------------------------------------------------- the runs


def run_all(env: str, tmp_path: Path) -> DataCatalog:
    raw = tmp_path / "data" / "01_raw"
    {"merit": make_merit, "lynker_hydrofabric": make_hydrofabric}[env](raw, tmp_path / "src")
    catalog, _ = project_config(env, tmp_path)
    # Three runs, as from the command line: evaluation finds the trained model by run name (its
    # checkpoint folder), not through a catalog dataset, so it must start after training ends.
    SequentialRunner().run(data_processing.create_pipeline(geodatasets=(env,)), catalog)
    SequentialRunner().run(training.create_pipeline(geodataset=env), catalog)
    SequentialRunner().run(evaluation.create_pipeline(geodataset=env), catalog)
    return catalog


@pytest.mark.parametrize("env", ["merit", "lynker_hydrofabric"])
def test_continental_dataset_trains_and_evaluates(env: str, tmp_path: Path) -> None:
    catalog = run_all(env, tmp_path)
    model_input = tmp_path / "data" / "05_model_input" / env
    assert (model_input / "model_inputs.zarr").is_dir()
    ds = io.read_zarr(model_input / "model_inputs.zarr")
    assert np.isfinite(ds["lateral_inflow"].values).all()
    assert np.isfinite(ds["attributes"].values).all()
    assert ds["attributes"]["attribute"].values.tolist() == ATTRIBUTES[env]

    checkpoint = tmp_path / "data" / "06_models" / RUN / "trained_model.pt"
    assert checkpoint.is_file()
    history = catalog.load("training.history")
    assert len(history) >= 1 and np.isfinite(history["loss"]).all()

    model_test = catalog.load("evaluation.model_test")
    predictions = model_test["predictions"].values
    assert predictions.size and np.isfinite(predictions).all() and (predictions >= 0).all()
    metrics = catalog.load("evaluation.metrics_per_gauge")
    model = metrics[metrics["model"] == "model"]
    assert len(model) == ds.sizes["gage_id"]
    assert np.isfinite(model["nse"]).all() and np.isfinite(model["kge"]).all()
    report = tmp_path / "data" / "08_reporting" / RUN / "evaluation"
    assert (report / "metrics_per_gauge.parquet").is_file()
