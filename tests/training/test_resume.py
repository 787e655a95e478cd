"""Checkpoints resume exactly: stop + resume == uninterrupted, bitwise on CPU."""

from __future__ import annotations

import torch
from training_synthetic import full_training_params, with_changes

from ddr_pipeline.model_store.checkpoints import checkpoint_path


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), f"tensor {key} differs"


def _optimizer_tensors(trainer) -> list[torch.Tensor]:
    state = trainer.optimizer.state_dict()["state"]
    return [t for slot in state.values() for t in slot.values()]


def test_stop_and_resume_is_bitwise_identical(make_trainer, tmp_path):
    params = full_training_params()
    full = make_trainer(params, models_dir=tmp_path / "a")
    reference = full.fit()
    assert not reference.stopped_early
    assert len(reference.history) == 6

    for stop_after in (2, 3, 4):  # mid-epoch 1, end of epoch 1, mid-epoch 2
        folder = tmp_path / f"stop{stop_after}"
        interrupted = make_trainer(params, models_dir=folder, max_steps=stop_after).fit()
        assert interrupted.stopped_early
        assert len(interrupted.history) == stop_after
        epoch, mb = divmod(stop_after - 1, 3)
        ckpt = checkpoint_path(folder, "full", epoch + 1, mb)
        assert interrupted.final_checkpoint == ckpt

        resumed = make_trainer(with_changes(params, checkpoint=str(ckpt)), models_dir=folder)
        result = resumed.fit()

        _assert_same_state(reference.model.state_dict(), result.model.state_dict())
        for x, y in zip(_optimizer_tensors(full), _optimizer_tensors(resumed), strict=True):
            assert torch.equal(x, y)
        assert reference.history["loss"].tolist() == result.history["loss"].tolist()
        assert reference.history["window_start"].tolist() == result.history["window_start"].tolist()
        assert reference.history["gauges"].tolist() == result.history["gauges"].tolist()


def test_resume_with_more_epochs_continues_from_the_checkpoint(make_trainer, tmp_path):
    params = with_changes(full_training_params(), epochs=1)
    make_trainer(params, models_dir=tmp_path).fit()
    ckpt = checkpoint_path(tmp_path, "full", 1, 2)
    more = make_trainer(with_changes(params, epochs=2, checkpoint=str(ckpt)), models_dir=tmp_path)
    result = more.fit()
    assert result.history["epoch"].tolist() == [1, 1, 1, 2, 2, 2]


def test_resume_from_the_last_checkpoint_trains_nothing(make_trainer, tmp_path):
    params = with_changes(full_training_params(), epochs=1)
    done = make_trainer(params, models_dir=tmp_path).fit()
    again = make_trainer(with_changes(params, checkpoint=str(done.final_checkpoint)))
    result = again.fit()
    assert result.final_checkpoint == done.final_checkpoint
    assert len(result.history) == 3 and result.summary["mini_batches"] == 3
    _assert_same_state(done.model.state_dict(), result.model.state_dict())
