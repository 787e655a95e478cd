"""One attempt per run folder: retrain, concurrent training and kill-and-retry are refused."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from training_synthetic import full_training_params, with_changes

from ddr_pipeline.model_store.checkpoints import (
    CheckpointError,
    claim_run_folder,
    folder_attempt,
    read_checkpoint,
    run_folder_lock,
)


def _params(**changes):
    return with_changes(full_training_params(), epochs=1, validation_every=None, **changes)


def test_retraining_under_a_used_name_is_refused(make_trainer, tmp_path):
    first = make_trainer(_params(), models_dir=tmp_path, max_steps=1)
    first.fit()
    assert folder_attempt(tmp_path, "full") == first.attempt["id"]
    for path in first.checkpoints:
        assert read_checkpoint(path)["attempt"]["id"] == first.attempt["id"]
    with pytest.raises(CheckpointError, match="holds another training attempt"):
        make_trainer(with_changes(_params(), seed=7), models_dir=tmp_path).fit()


def test_a_concurrent_training_with_the_same_name_is_refused(make_trainer, tmp_path):
    trainer = make_trainer(_params(), models_dir=tmp_path)
    with (
        run_folder_lock(tmp_path, "full"),
        pytest.raises(CheckpointError, match="in use by another training"),
    ):
        trainer.fit()


def test_kill_and_retry_must_resume_the_same_attempt(make_trainer, tmp_path):
    killed = make_trainer(_params(), models_dir=tmp_path, max_steps=1)
    stopped = killed.fit()
    with pytest.raises(CheckpointError, match=r"Resume it with experiment.checkpoint=.*mb_0.pt"):
        make_trainer(_params(), models_dir=tmp_path).fit()
    resumed = make_trainer(_params(checkpoint=str(stopped.final_checkpoint)), models_dir=tmp_path)
    result = resumed.fit()
    assert resumed.attempt["id"] == killed.attempt["id"]
    attempts = {read_checkpoint(path)["attempt"]["id"] for path in result.checkpoints}
    assert attempts == {killed.attempt["id"]}


def test_an_attempt_killed_before_its_first_checkpoint_is_taken_over(tmp_path):
    claim_run_folder(tmp_path, "full", "killed", resuming=False)
    claim_run_folder(tmp_path, "full", "retry", resuming=False)  # no model files: nothing lost
    assert folder_attempt(tmp_path, "full") == "retry"


def test_replace_run_discards_the_earlier_attempt_but_never_a_running_one(make_trainer, tmp_path):
    first = make_trainer(_params(), models_dir=tmp_path, max_steps=1)
    first.fit()
    replacing = _params()
    replacing["monitoring"] = {"replace_run": True, "progress_bar": False}
    with run_folder_lock(tmp_path, "full"), pytest.raises(CheckpointError, match="in use"):
        make_trainer(replacing, models_dir=tmp_path, max_steps=1).fit()
    second = make_trainer(replacing, models_dir=tmp_path, max_steps=1)
    result = second.fit()
    assert folder_attempt(tmp_path, "full") == second.attempt["id"] != first.attempt["id"]
    files = sorted((tmp_path / "full" / "saved_models").iterdir())
    assert files == result.checkpoints
    assert {read_checkpoint(f)["attempt"]["id"] for f in files} == {second.attempt["id"]}
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_the_lock_holds_across_processes_and_dies_with_its_holder(make_trainer, tmp_path):
    """A training in another process keeps this one out; once it is killed, training proceeds."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from ddr_pipeline.model_store.checkpoints import run_folder_lock\n"
            "with run_folder_lock(sys.argv[1], 'full'):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(120)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointError, match="in use by another training"):
            make_trainer(_params(), models_dir=tmp_path, max_steps=1).fit()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert make_trainer(_params(), models_dir=tmp_path, max_steps=1).fit().checkpoints
