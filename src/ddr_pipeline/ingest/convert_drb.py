"""Convert the Delaware River Basin NHM demo data (pywatershed drb_2yr) into the input schema.

Usage: ddr-convert-drb [--source DIR] [--out DIR]   (from the project root)
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

from ddr_pipeline.ingest.drb import convert_drb

DEFAULT_SOURCE = Path("..") / "shared" / "data" / "drb_nhm_2yr"
DEFAULT_OUT = Path("data") / "01_raw" / "drb"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help=f"folder with the drb_nhm_2yr NetCDF files (default {DEFAULT_SOURCE})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output schema folder (default {DEFAULT_OUT})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the conversion and print the summary counts."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = convert_drb(args.source, args.out)
    for key, value in asdict(summary).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
