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


def test_a_truncated_checkpoint_says_how_to_resume(tmp_path):
    """Issue 26 finding 6: the raw unpickling error carried no hint."""
    folder = tmp_path / "run" / "saved_models"
    folder.mkdir(parents=True)
    earlier = folder / "ddr_run_epoch_1_mb_4.pt"
    torch.save({"a": torch.ones(10)}, earlier)
    cut = folder / "ddr_run_epoch_1_mb_9.pt"
    torch.save({"a": torch.ones(1000)}, cut)
    cut.write_bytes(cut.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_checkpoint(cut)
    assert f"resume with training.experiment.checkpoint={earlier}" in str(info.value)
    final = tmp_path / "run" / "trained_model.pt"
    final.write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(CheckpointError, match=f"checkpoint={cut}"):
        load_checkpoint(final)


def test_a_full_disk_names_the_checkpoint_and_the_resume(tmp_path, monkeypatch):
    import errno

    from ddr_pipeline.model_store import checkpoints

    folder = tmp_path / "saved_models"
    folder.mkdir()
    earlier = folder / "ddr_run_epoch_1_mb_4.pt"
    earlier.write_bytes(b"x")
    payload = dict.fromkeys(checkpoints.REQUIRED_KEYS, 0)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full)
    target = folder / "ddr_run_epoch_1_mb_9.pt"
    with pytest.raises(CheckpointError, match="no space left on the device") as info:
        checkpoints.save_checkpoint(payload, target)
    assert f"training.experiment.checkpoint={earlier}" in str(info.value)
    assert sorted(p.name for p in folder.iterdir()) == [earlier.name]  # no temporary left
