"""A rank that dies mid-training (imported by name in the spawned ranks)."""

from __future__ import annotations

import os

#: Exit code of the killed rank.
EXIT_CODE = 3


def kill_rank_one_in_second_step(record: dict) -> None:
    """``on_step`` hook: rank 1 exits abruptly (no exception, no cleanup) in step 1.

    Step 0's checkpoint is written; step 1's never is.
    """
    if os.environ.get("RANK") == "1" and record["step"] == 1:
        os._exit(EXIT_CODE)
