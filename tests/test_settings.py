"""Project settings: environments overlay ``conf/base`` key by key (soft merge)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from kedro.config import OmegaConfigLoader

from ddr_pipeline.settings import CONFIG_LOADER_ARGS


def _loader(project_root: Path, tmp_path: Path, files: dict[str, dict]) -> OmegaConfigLoader:
    conf = tmp_path / "conf"
    shutil.copytree(project_root / "conf" / "base", conf / "base")
    (conf / "over").mkdir()
    for name, content in files.items():
        (conf / "over" / name).write_text(yaml.safe_dump(content))
    return OmegaConfigLoader(
        str(conf), env="over", config_patterns={"mlflow": ["mlflow*", "mlflow*/**"]},
        **CONFIG_LOADER_ARGS,
    )


def test_env_overrides_merge_softly(project_root, tmp_path):
    loader = _loader(
        project_root, tmp_path,
        {
            "parameters_x.yml": {"data_processing": {"gauges": {"seed": 7}}},
            "mlflow.yml": {"tracking": {"experiment": {"name": "other"}}},
            "globals.yml": {"paths": {"raw": "/elsewhere"}},
        },
    )
    params = loader["parameters"]["data_processing"]
    assert params["gauges"]["seed"] == 7
    assert params["gauges"]["validation_fraction"] == 0.2  # kept from base
    assert params["periods"]["train"] == ["1979-01-01", "1979-12-31"]
    mlflow_conf = loader["mlflow"]
    assert mlflow_conf["tracking"]["experiment"]["name"] == "other"
    assert mlflow_conf["tracking"]["params"]["dict_params"]["flatten"] is True
    assert mlflow_conf["server"]["mlflow_tracking_uri"] == "sqlite:///mlflow.db"
    catalog = loader["catalog"]
    assert catalog["{geodataset}.reaches"]["filepath"] == "/elsewhere/{geodataset}/reaches.parquet"
    assert catalog["{geodataset}.model_inputs"]["filepath"].startswith("data/05_model_input/")


def test_default_environment_is_local():
    assert CONFIG_LOADER_ARGS["base_env"] == "base"
    assert CONFIG_LOADER_ARGS["default_run_env"] == "local"


def test_params_replace_the_learning_rate_table(project_root):
    """``--params`` give the whole LR table (not merged into conf/base's); other keys merge."""
    from ddr_pipeline import settings

    runtime = {"training": {"experiment": {"learning_rate": {1: 0.1}, "epochs": 2}}}
    args = {**CONFIG_LOADER_ARGS, "default_run_env": "base"}
    conf = str(project_root / "conf")
    kedro_merged = OmegaConfigLoader(conf, runtime_params=runtime, **args)["parameters"]
    assert len(kedro_merged["training"]["experiment"]["learning_rate"]) > 1  # what Kedro does
    params = settings.CONFIG_LOADER_CLASS(conf, runtime_params=runtime, **args)["parameters"]
    experiment = params["training"]["experiment"]
    assert experiment["learning_rate"] == {1: 0.1}
    assert experiment["epochs"] == 2
    assert experiment["batch_size"] == kedro_merged["training"]["experiment"]["batch_size"]
    scalar = {"training": {"experiment": {"learning_rate": 0.05}}}
    params = settings.CONFIG_LOADER_CLASS(conf, runtime_params=scalar, **args)["parameters"]
    assert params["training"]["experiment"]["learning_rate"] == 0.05



def test_an_environment_table_replaces_the_base_table(project_root, tmp_path):
    """``--env`` overlays merge parameters key by key, but a learning-rate table is one value."""
    from ddr_pipeline import settings

    table = {"training": {"experiment": {"learning_rate": {2: 0.03}}}}
    conf = tmp_path / "conf"
    shutil.copytree(project_root / "conf" / "base", conf / "base")
    (conf / "over").mkdir()
    (conf / "over" / "parameters_lr.yml").write_text(yaml.safe_dump(table))
    loader = settings.CONFIG_LOADER_CLASS(str(conf), env="over", **CONFIG_LOADER_ARGS)
    experiment = loader["parameters"]["training"]["experiment"]
    assert experiment["learning_rate"] == {2: 0.03}
    assert experiment["epochs"] > 0  # the rest of the block still comes from conf/base
    runtime = {"training": {"experiment": {"learning_rate": {1: 0.1}}}}
    args = {**CONFIG_LOADER_ARGS, "runtime_params": runtime}
    loader = settings.CONFIG_LOADER_CLASS(str(conf), env="over", **args)
    assert loader["parameters"]["training"]["experiment"]["learning_rate"] == {1: 0.1}


def test_an_environment_without_parameter_files_keeps_the_base(project_root, tmp_path):
    """``conf/local`` holds only a ``.gitkeep`` in a fresh clone: the base parameters load."""
    from ddr_pipeline import settings

    conf = tmp_path / "conf"
    shutil.copytree(project_root / "conf" / "base", conf / "base")
    (conf / "local").mkdir()
    (conf / "local" / ".gitkeep").write_text("")
    base = OmegaConfigLoader(str(conf), **{**CONFIG_LOADER_ARGS, "default_run_env": "base"})
    loader = settings.CONFIG_LOADER_CLASS(str(conf), **CONFIG_LOADER_ARGS)
    assert loader["parameters"] == base["parameters"]
