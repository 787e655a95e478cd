"""Make the synthetic twin of ``tests/training`` importable here."""

from __future__ import annotations

import sys
from pathlib import Path

TRAINING_TESTS = Path(__file__).resolve().parents[2] / "training"
if str(TRAINING_TESTS) not in sys.path:
    sys.path.insert(0, str(TRAINING_TESTS))
