"""Write a dataset's ``lakes.parquet`` from a reservoir facts CSV (level-pool parameters).

Usage: ddr-convert-reservoirs --facts CSV --dataset DIR [--freeboard M]   (from the project root)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ddr_pipeline.ingest.reservoir_facts import DEFAULT_FREEBOARD_M, convert_reservoirs


def main(argv: list[str] | None = None) -> None:
    """``ddr-convert-reservoirs --facts CSV --dataset DIR``: write DIR/lakes.parquet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=Path, required=True, help="reservoir facts CSV")
    parser.add_argument("--dataset", type=Path, required=True, help="schema folder to write into")
    parser.add_argument("--freeboard", type=float, default=DEFAULT_FREEBOARD_M,
                        help=f"dam crest above spillway crest, m (default {DEFAULT_FREEBOARD_M})")  # fmt: skip
    args = parser.parse_args(argv)
    lakes = convert_reservoirs(args.facts, args.dataset, args.freeboard)
    print(lakes.drop(columns=["source"]).to_string(index=False))


if __name__ == "__main__":
    main()
