"""Typed parameters of every pipeline: committed environments validate, errors name key paths."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from kedro.pipeline import Node, Pipeline

from ddr_pipeline.config.pipelines import SECTIONS, validate_parameters
from ddr_pipeline.config.training import ConfigError
from ddr_pipeline.project.hooks import ParameterValidationHooks, parameter_sections
from ddr_pipeline.settings import CONFIG_LOADER_ARGS

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ["base", "test", "merit", "lynker_hydrofabric"]


def _parameters(env: str) -> dict:
    args = {**CONFIG_LOADER_ARGS, "default_run_env": env}
    loader = OmegaConfigLoader(
        conf_source=str(ROOT / "conf"), runtime_params={"run_name": "r"}, **args
    )
    return loader["parameters"]


@pytest.fixture(scope="module")
def base() -> dict:
    return _parameters("base")


def _error(parameters: dict, sections: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_parameters(parameters, sections)
    return str(info.value)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_committed_environments_validate(env: str) -> None:
    configs = validate_parameters(_parameters(env), list(SECTIONS))
    assert {c.geodataset for c in configs.values()} == {"drb" if env in ("base", "test") else env}


def test_unknown_key_gets_a_did_you_mean(base: dict) -> None:
    params = copy.deepcopy(base)
    params["evaluation"]["warmup_dayz"] = 3
    params["routing"]["model"]["checkpoint_path"] = "x.pt"
    params["training"]["kan"]["gridd"] = 3
    message = _error(params, ["evaluation", "routing", "training"])
    assert (
        "evaluation.warmup_dayz: Extra inputs are not permitted (did you mean 'warmup_days'?)"
        in message
    )
    assert (
        "routing.model.checkpoint_path: Extra inputs are not permitted (did you mean 'checkpoint'?)"
        in message
    )
    assert "training.kan.gridd: Extra inputs are not permitted (did you mean 'grid'?)" in message


def test_bad_values_name_their_key_path(base: dict) -> None:
    params = copy.deepcopy(base)
    params["data_processing"]["periods"] = {"test": ["1980-01-01", "1980-12-31"]}
    params["data_processing"]["gauges"]["validation_fraction"] = 1.5
    params["evaluation"]["chunk_days"] = 0
    params["evaluation"]["plot_subset"] = "best"
    params["routing"]["period"] = ["1980-02-01", "1980-01-01"]
    params["routing"]["model"]["mlflow_model_uri"] = "http://x"
    message = _error(params, ["data_processing", "evaluation", "routing"])
    for path in (
        "data_processing.periods: a 'train' period is required",
        "data_processing.gauges.validation_fraction:",
        "evaluation.chunk_days: Input should be greater than 0",
        "evaluation.plot_subset:",
        "routing.period: start 1980-02-01 is after end 1980-01-01",
        "routing.model.mlflow_model_uri: must start with runs:/ or models:/",
    ):
        assert path in message


def test_sections_must_name_one_geodataset(base: dict) -> None:
    params = copy.deepcopy(base)
    params["routing"]["geodataset"] = "merit"
    assert "routing.geodataset='merit'" in _error(params, ["data_processing", "routing"])
    with pytest.raises(ConfigError, match="geodataset"):
        validate_parameters(
            {**params, "routing": {**params["routing"], "geodataset": "Bad-Name"}}, ["routing"]
        )


def test_hook_validates_the_sections_a_pipeline_reads(base: dict) -> None:
    def identity(x):
        return x

    pipeline = Pipeline(
        [Node(identity, "params:routing.chunk_days", "a"), Node(identity, "params:other", "b")]
    )
    assert parameter_sections(pipeline) == ["routing"]

    class Catalog:
        def __init__(self, parameters):
            self.parameters = parameters

        def load(self, name):
            assert name == "parameters"
            return self.parameters

    hooks = ParameterValidationHooks()
    hooks.before_pipeline_run({}, pipeline, Catalog(base))
    bad = copy.deepcopy(base)
    bad["routing"]["chunk_dayz"] = 5
    with pytest.raises(ConfigError, match="routing.chunk_dayz"):
        hooks.before_pipeline_run({}, pipeline, Catalog(bad))


@pytest.mark.parametrize(
    ("section", "path", "value", "expected"),
    [
        (
            "training",
            ("experiment", "seed"),
            True,
            "training.experiment.seed: Input should be a valid integer",
        ),
        (
            "training",
            ("experiment", "shuffle"),
            "no",
            "training.experiment.shuffle: Input should be a valid boolean",
        ),
        (
            "training",
            ("experiment", "epochs"),
            "3",
            "training.experiment.epochs: Input should be a valid integer",
        ),
        (
            "data_processing",
            ("gauges", "seed"),
            7.0,
            "data_processing.gauges.seed: Input should be a valid integer",
        ),
        (
            "evaluation",
            ("chunk_days",),
            "20",
            "evaluation.chunk_days: Input should be a valid integer",
        ),
        (
            "routing",
            ("target_reach_ids",),
            [True],
            "routing.target_reach_ids.0: Input should be a valid integer",
        ),
    ],
)
def test_types_are_strict(base: dict, section, path, value, expected) -> None:
    """Issue 26 finding 6: YAML / --params values were coerced (seed: true -> 1)."""
    params = copy.deepcopy(base)
    block = params[section]
    for key in path[:-1]:
        block = block[key]
    block[path[-1]] = value
    assert expected in _error(params, [section])


def test_warmup_longer_than_the_training_period_fails_before_the_run(base: dict) -> None:
    params = copy.deepcopy(base)
    params["data_processing"]["periods"]["train"] = ["1979-01-01", "1979-01-20"]
    params["training"]["experiment"].update(rho=None, warmup=20)
    message = _error(params, ["training"])
    assert "training.experiment.warmup: 20 days leave no day to score in a 20-day window" in message
    params["training"]["experiment"]["warmup"] = 19
    validate_parameters(params, ["training"])


def test_more_threads_than_cores_warn(base: dict, caplog: pytest.LogCaptureFixture) -> None:
    from ddr_pipeline.config.pipelines import warn_oversubscribed

    params = copy.deepcopy(base)
    params["training"]["distributed"] = {"nproc_per_node": 4, "threads_per_rank": 2}
    config = validate_parameters(params, ["training"])["training"]
    assert "4 rank(s) x 2 thread(s) = 8 threads on 4 cores" in warn_oversubscribed(config, cores=4)
    assert warn_oversubscribed(config, cores=8) is None
