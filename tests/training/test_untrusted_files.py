"""Model files are data, never code: crafted pickles do not run, damaged files are named."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from training_synthetic import twin_training_params

from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.model_store.checkpoints import CheckpointError, load_checkpoint
from ddr_pipeline.parameter_registry import default_ranges, outside_domain


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickle_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "trained_model.pt"
    torch.save({"model_state_dict": _Exploit(marker)}, crafted)
    with pytest.raises(CheckpointError, match=r"trained_model.pt cannot be read"):
        load_checkpoint(crafted)
    assert not marker.exists()
    with crafted.open("wb") as stream:  # a plain pickle, not a torch zip archive
        pickle.dump(_Exploit(marker), stream)
    with pytest.raises(CheckpointError, match=r"trained_model.pt cannot be read"):
        load_checkpoint(crafted)
    assert not marker.exists()


def test_a_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "ddr_x_epoch_1_mb_0.pt"
    torch.save({"a": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"ddr_x_epoch_1_mb_0.pt cannot be read"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("name", "bounds"), [("n", [-1.0, 0.1]), ("n", [0.0, 0.1]), ("q_spatial", [0.2, 1.5])]
)
def test_parameter_ranges_outside_the_physics_fail_at_validation(name, bounds):
    params = twin_training_params()
    params["params"]["parameter_ranges"] = {name: bounds}
    with pytest.raises(ValueError, match=rf"{name}: range .* leaves the physical domain"):
        load_training_config(params)


def test_the_default_ranges_lie_in_the_physical_domains():
    for name, (lo, hi) in default_ranges().items():
        assert outside_domain(name, lo, hi) is None, name
