"""Training configuration: YAML defaults load, errors name key paths, LR table, generated docs."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from ddr_pipeline.config.training import ConfigError, TrainingConfig, load_training_config
from ddr_pipeline.settings import CONFIG_LOADER_ARGS

ROOT = Path(__file__).resolve().parents[1]


def _params(env: str) -> dict:
    args = {**CONFIG_LOADER_ARGS, "default_run_env": env}
    loader = OmegaConfigLoader(conf_source=str(ROOT / "conf"), **args)
    return loader["parameters"]["training"]


@pytest.fixture(scope="module")
def base() -> dict:
    return _params("base")


@pytest.fixture(scope="module")
def lstm(base: dict) -> dict:
    """The base with the LSTM learning a daily n (as the merit environment keeps it)."""
    params = copy.deepcopy(base)
    params["kan"]["learnable_parameters"] = ["q_spatial", "top_width", "side_slope"]
    params["cuda_lstm"] = {
        "hidden_size": 32,
        "forcing_var_names": ["P", "PET", "Temp"],
        "input_var_names": list(base["kan"]["input_var_names"]),
        "learnable_parameters": ["n"],
    }
    return params


def _error(params: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_training_config(params)
    return str(info.value)


def test_base_and_test_yaml_validate(base: dict) -> None:
    cfg = load_training_config(base)
    assert cfg.geodataset == "drb"
    assert cfg.run_name == "ddr-drb-training"
    # KAN-only model with a static n, leakance off: chosen by the 1979 selection (docs/results.md)
    assert cfg.kan.learnable_parameters == ["n", "q_spatial", "top_width", "side_slope"]
    assert cfg.cuda_lstm is None
    assert not cfg.params.use_leakance
    assert cfg.routing.x == "data" and cfg.routing.celerity == "wide_rectangle"
    ci = load_training_config(_params("test"))
    assert ci.experiment.epochs == 1
    assert ci.cuda_lstm is None  # the demo's model, shrunk
    assert ci.kan.hidden_size < cfg.kan.hidden_size
    assert ci.kan.input_var_names == cfg.kan.input_var_names  # overlay keeps base inputs


def test_unknown_key_is_named(base: dict) -> None:
    params = copy.deepcopy(base)
    params["kan"]["gridd"] = 3
    assert "training.kan.gridd: Extra inputs are not permitted" in _error(params)


def test_bad_value_is_named(base: dict) -> None:
    params = copy.deepcopy(base)
    params["kan"]["grid"] = 0
    assert "training.kan.grid: Input should be greater than 0" in _error(params)


def test_missing_range_is_named(base: dict) -> None:
    params = copy.deepcopy(base)
    del params["params"]["parameter_ranges"]["n"]
    message = _error(params)
    assert "training.params.parameter_ranges" in message
    assert "['n']" in message


def test_overlap_between_networks(lstm: dict) -> None:
    params = copy.deepcopy(lstm)
    params["kan"]["learnable_parameters"] = ["q_spatial", "n"]
    assert "overlap: ['n']" in _error(params)


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        ({"top_width": [10.0, 5.0]}, "training.params.parameter_ranges.top_width: range needs lo"),
        ({"d_gw": [0.0, 5.0]}, "training.params.parameter_ranges.d_gw: log-space"),
        ({"top_width": [0.0, 5.0]}, "top_width: range [0.0, 5.0] leaves the physical domain (0.0, inf)"),
        ({"q_spatial": [0.2, 1.5]}, "q_spatial: range [0.2, 1.5] leaves the physical domain [0.0, 1.0]"),
        ({"bogus": [0.0, 1.0]}, "unknown parameter names ['bogus']"),
    ],
)
def test_range_validation(base: dict, ranges: dict, expected: str) -> None:
    params = copy.deepcopy(base)
    params["params"]["parameter_ranges"].update(ranges)
    assert expected in _error(params)


def test_unknown_learnable_rejected(lstm: dict) -> None:
    params = copy.deepcopy(lstm)
    params["cuda_lstm"]["learnable_parameters"] = ["manning"]
    assert "training.cuda_lstm.learnable_parameters: unknown parameter names" in _error(params)


def test_unlearned_parameter_needs_default(lstm: dict) -> None:
    params = copy.deepcopy(lstm)
    params["cuda_lstm"]["learnable_parameters"] = ["d_gw"]
    assert "['n'] are neither learned nor given a default" in _error(params)
    params["params"]["defaults"]["n"] = 0.035
    assert load_training_config(params).params.defaults["n"] == 0.035


def test_learning_rate_table_fallback(base: dict) -> None:
    params = copy.deepcopy(base)
    params["experiment"]["learning_rate"] = {3: 0.001, 1: 0.005, 10: 0.0001}
    experiment = load_training_config(params).experiment
    rates = [experiment.learning_rate_for_epoch(e) for e in (1, 2, 3, 4, 9, 10, 50)]
    assert rates == [0.005, 0.005, 0.001, 0.001, 0.001, 0.0001, 0.0001]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({0: 0.1, 1: 0.01}, "epoch keys must be >= 1"),
        ({2: 0.1}, "must define the learning rate of epoch 1"),
    ],
)
def test_learning_rate_table_keys(base: dict, table: dict, expected: str) -> None:
    params = copy.deepcopy(base)
    params["experiment"]["learning_rate"] = table
    assert f"training.experiment.learning_rate: {expected}" in _error(params)


def test_weight_decay_needs_adamw(base: dict) -> None:
    params = copy.deepcopy(base)
    params["experiment"]["weight_decay"] = 0.1
    expected = "training.experiment: weight_decay 0.1 needs optimizer adamw, got 'adam'"
    assert expected in _error(params)
    params["experiment"]["optimizer"] = "adamw"
    assert load_training_config(params).experiment.weight_decay == 0.1
    params["experiment"]["weight_decay"] = -0.1
    assert "training.experiment.weight_decay" in _error(params)


def test_device_and_warmup(base: dict) -> None:
    params = copy.deepcopy(base)
    params["experiment"]["device"] = "gpu0"
    assert "training.experiment.device" in _error(params)
    params["experiment"]["device"] = "cuda:1"
    params["experiment"]["warmup"] = params["experiment"]["rho"]
    assert "must be shorter than rho" in _error(params)


def test_flat_dict_is_scalar(base: dict) -> None:
    flat = load_training_config(base).to_flat_dict()
    assert flat["kan.grid"] == base["kan"]["grid"]
    assert flat["kan.learnable_parameters"] == "n,q_spatial,top_width,side_slope"
    assert all(not isinstance(value, (list, dict)) for value in flat.values())


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_training_config(["training"])  # type: ignore[arg-type]


def test_generated_docs_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", ROOT / "scripts/gen_config_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == module.render(), "run: python scripts/gen_config_docs.py"
    for name in TrainingConfig.model_fields:
        assert f"`{name}`" in current


def test_demo_narrows_leakance_range_documented_deviation(base: dict) -> None:
    """The physics contract's K_D_delta range is the model default; the demo narrows it (for runs
    that turn leakance on; the demo default is off).

    With [-3, 1] the initial riverbed exchange is of the order of small streams' flow and training
    never undoes it (docs/results.md, "Leakance range"), so the DRB config starts at [-5, -1].
    """
    from ddr_pipeline.config.training import ParamsConfig

    assert ParamsConfig().parameter_ranges["K_D_delta"] == (-3.0, 1.0)
    cfg = load_training_config(base)
    assert tuple(cfg.params.parameter_ranges["K_D_delta"]) == (-5.0, -1.0)


def test_lstm_sequence_groups_validated(lstm: dict) -> None:
    assert load_training_config(lstm).cuda_lstm.sequence_groups is None
    params = copy.deepcopy(lstm)
    params["cuda_lstm"]["sequence_groups"] = 0
    assert "training.cuda_lstm.sequence_groups: Input should be greater than 0" in _error(params)
    params["cuda_lstm"]["sequence_groups"] = 32
    assert load_training_config(params).cuda_lstm.sequence_groups == 32
    params["cuda_lstm"]["input_var_names"] = []
    assert "cuda_lstm.sequence_groups=32 groups reaches" in _error(params)


@pytest.mark.parametrize(
    ("name", "problem"),
    [("run\n", "not a plain folder name"), ("r" * 236, "236 characters, more than 100")],
)
def test_run_names_are_matched_whole_and_limited_in_length(name: str, problem: str) -> None:
    """Issue 26 finding 6: '$' accepted a trailing newline; a 236-character name failed late."""
    from ddr_pipeline.config.training import check_run_name

    with pytest.raises(ValueError, match=problem):
        check_run_name(name)
    assert check_run_name("r" * 100) == "r" * 100
