"""Checkpoint files: contents, atomic writes, loading for inference, mismatch errors."""

from __future__ import annotations

import pytest
import torch
from training_synthetic import full_training_params, with_changes

from ddr_pipeline.data.containers import GaugeSet
from ddr_pipeline.model_store.checkpoints import (
    REQUIRED_KEYS,
    RNG_KEYS,
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from ddr_pipeline.simulation.batches import build_batch
from ddr_pipeline.training import predict


@pytest.fixture
def trained(make_trainer, tmp_path):
    trainer = make_trainer(with_changes(full_training_params(), epochs=1), models_dir=tmp_path)
    return trainer, trainer.fit()


def test_checkpoint_files_names_and_contents(trained, tmp_path):
    trainer, result = trained
    expected = [checkpoint_path(tmp_path, "full", 1, mb) for mb in range(3)]
    assert result.checkpoints == expected
    assert all(p.is_file() for p in expected)
    assert not [p for p in expected[0].parent.iterdir() if p.name.startswith(".")]
    payload = read_checkpoint(expected[-1])
    assert set(REQUIRED_KEYS) <= set(payload)
    assert set(RNG_KEYS) <= set(payload["rng_state"])
    assert payload["epoch"] == 1 and payload["mini_batch"] == 2 and payload["epoch_complete"]
    assert payload["global_step"] == 3
    assert payload["attribute_names"] == ["a0", "a1", "a2"]
    assert payload["forcing_names"] == ["P", "PET", "Temp"]
    assert payload["config"]["experiment"]["rho"] == 20
    assert payload["scheduler_state"]["learning_rate"] == 0.01
    assert any(k.startswith("kan.") for k in payload["model_state_dict"])
    assert any(k.startswith("lstm.") for k in payload["model_state_dict"])
    assert payload["optimizer_state_dict"]["state"]
    assert len(payload["history"]) == 3
    assert latest_checkpoint(tmp_path, "full") == expected[-1]


def test_load_checkpoint_rebuilds_the_trained_model(trained, twin, tmp_path):
    trainer, result = trained
    inputs, gauges, stats, _ = twin
    loaded = load_checkpoint(result.final_checkpoint)
    assert loaded.normalization_stats == stats
    assert loaded.attribute_names == inputs.attribute_names
    assert not loaded.model.training
    for key, value in result.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    g = GaugeSet.from_table(gauges, inputs, "validation")
    batch = build_batch(inputs, g, list(range(len(g))), 0, 15)
    a = predict(result.model, batch, trainer.features, trainer.routing)
    b = predict(loaded.model, batch, trainer.features, trainer.routing)
    assert (a == b).all()


def test_resume_rejects_mismatched_config_and_attributes(trained, make_trainer, tmp_path):
    _, result = trained
    params = with_changes(full_training_params(), checkpoint=str(result.final_checkpoint))
    params["kan"]["hidden_size"] = 5
    with pytest.raises(CheckpointError, match=r"kan\.hidden_size: checkpoint 4 != now 5"):
        make_trainer(params, models_dir=tmp_path).fit()
    payload = read_checkpoint(result.final_checkpoint)
    payload["attribute_names"] = ["a0", "zz", "a2"]
    bad = save_checkpoint(payload, tmp_path / "bad.pt")
    params = with_changes(full_training_params(), checkpoint=str(bad), epochs=1)
    with pytest.raises(CheckpointError, match="attribute_names"):
        make_trainer(params, models_dir=tmp_path).fit()


def test_read_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")
    torch.save({"epoch": 1}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="lacks keys"):
        read_checkpoint(tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="lacks keys"):
        save_checkpoint({"epoch": 1}, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_checkpoint_dataset_round_trip(trained, tmp_path):
    from kedro.io import DatasetError

    from ddr_pipeline.project.datasets.checkpoint import CheckpointDataset

    _, result = trained
    payload = read_checkpoint(result.final_checkpoint)
    dataset = CheckpointDataset(filepath=str(tmp_path / "out" / "trained_model.pt"))
    assert not dataset.exists()
    dataset.save(payload)
    assert dataset.exists()
    loaded = dataset.load()
    assert loaded.epoch == 1 and not loaded.model.training
    raw = CheckpointDataset(
        filepath=str(tmp_path / "out" / "trained_model.pt"), load_args={"as_model": False}
    ).load()
    assert raw["global_step"] == 3
    with pytest.raises(DatasetError, match="payload dict"):
        dataset.save("not a checkpoint")
    with pytest.raises(DatasetError, match="unknown load_args"):
        CheckpointDataset(filepath="x.pt", load_args={"weights_only": False})


def test_a_checkpoint_records_the_data_it_was_trained_on(make_trainer, twin, tmp_path):
    """The gauge split and statistics fingerprints: consumers compare them with their data."""
    from ddr_pipeline.data.provenance import (
        SPLIT_FINGERPRINT,
        checkpoint_split,
        split_fingerprint,
        stats_fingerprint,
    )

    _, gauges, stats, _ = twin
    trainer = make_trainer(with_changes(full_training_params(), epochs=1), models_dir=tmp_path)
    computed_on = {**stats["computed_on"], SPLIT_FINGERPRINT: split_fingerprint(gauges)}
    trainer.normalization_stats = {**stats, "computed_on": computed_on}
    payload = read_checkpoint(trainer.save(1, 0, False))
    recorded = payload["data_provenance"]
    assert recorded["normalization_stats_sha256"] == stats_fingerprint(trainer.normalization_stats)
    assert checkpoint_split(payload) == split_fingerprint(gauges)
