"""Killed writers never leave a store missing, and their leftovers are cleaned at the next start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ddr_pipeline.data import io

# Replaces <root>/store (holding old.txt) by a folder holding new.txt, and SIGKILLs itself at the
# chosen point: "writing" (inside the temporary folder), "between_renames" (fallback without the
# atomic exchange: after moving the old store aside) or "after_swap" (before the old one is
# removed).
REPLACE_AND_DIE = """
import os, pathlib, signal, sys
from ddr_pipeline.data import io
root, point = pathlib.Path(sys.argv[1]), sys.argv[2]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if point == "between_renames":
    io._exchange = lambda a, b: False
    rename = pathlib.Path.rename
    calls = []
    def rename_then_die(self, target):
        calls.append(target)
        if len(calls) == 2:
            die()
        return rename(self, target)
    pathlib.Path.rename = rename_then_die
if point == "after_swap":
    io._remove = die
with io.atomic_path(root / "store") as tmp:
    tmp.mkdir()
    (tmp / "new.txt").write_text("new")
    if point == "writing":
        die()
"""


def _old_store(root: Path) -> None:
    (root / "store").mkdir()
    (root / "store" / "old.txt").write_text("old")


def _kill_at(points: list[str], tmp_path: Path) -> dict[str, Path]:
    roots = {point: tmp_path / point for point in points}
    runs = []
    for point, root in roots.items():
        root.mkdir()
        _old_store(root)
        runs.append(subprocess.Popen([sys.executable, "-c", REPLACE_AND_DIE, str(root), point]))
    for run in runs:
        assert run.wait(timeout=600) == -9
    return roots


def test_killed_replacements_leave_old_or_new_and_are_cleaned(tmp_path):
    roots = _kill_at(["writing", "between_renames", "after_swap"], tmp_path)
    expected = {"writing": "old.txt", "between_renames": "old.txt", "after_swap": "new.txt"}
    for point, root in roots.items():
        if point != "between_renames":  # the only instant without the store: restored below
            assert (root / "store" / expected[point]).is_file(), point
        assert any(p.name.startswith(".store.") for p in root.iterdir()), point
        io.clean_stale_temporaries(root)
        assert [p.name for p in root.iterdir()] == ["store"], point
        assert [p.name for p in (root / "store").iterdir()] == [expected[point]], point


def test_live_writers_temporaries_are_kept(tmp_path):
    mine = tmp_path / f".store.tmp-{os.getpid()}-abc123"
    mine.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    checkpoint_tmp = tmp_path / f".ddr_run_epoch_1_mb_0.pt.tmp-{dead.pid}-x1_yz"
    checkpoint_tmp.write_bytes(b"partial")
    assert io.clean_stale_temporaries(tmp_path) == [checkpoint_tmp]
    assert mine.is_dir() and not checkpoint_tmp.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="renameat2 exchange is Linux-only")
def test_directory_replacement_is_one_atomic_exchange(tmp_path, monkeypatch):
    _old_store(tmp_path)
    renames = []
    monkeypatch.setattr(Path, "rename", lambda self, target: renames.append(target))
    with io.atomic_path(tmp_path / "store") as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert renames == []  # no window without the store
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["store"]
