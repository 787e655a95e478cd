"""Convert MERIT-Basins river shapefiles + DDR gauge CSV (+ attributes, stores) into the schema.

Usage (see docs/datasets/merit.md):
  ddr-convert-merit RIV_SHP [RIV_SHP ...] --gauges CSV
      [--attributes merit_global_attributes_v2.nc] [--lateral-inflow STORE] [--observations STORE]
      [--forcings STORE] [--start D --end D] [--adjacency] [--out data/01_raw/merit]
      [--config conf/merit/sources.yml]
"""

from __future__ import annotations

import argparse
import glob
import logging
from pathlib import Path

from ddr_pipeline.ingest.cli import (
    add_common_arguments,
    add_store_arguments,
    parse_with_config,
    write_outputs,
)
from ddr_pipeline.ingest.merit import DEFAULT_MAX_AREA_DIFF_SQKM, DEFAULT_X, convert_merit

NAME = "merit"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rivers", nargs="*", type=Path, help="riv_pfaf_*.shp file(s)")
    add_common_arguments(parser, NAME)
    parser.add_argument("--gauges", type=Path, help="DDR gauge CSV with a COMID column")
    parser.add_argument("--attributes", help="attribute NetCDF/store keyed by COMID")
    parser.add_argument(
        "--attribute-names",
        type=lambda s: s.split(","),
        help="comma-separated attribute names (default: all 1-D variables)",
    )
    parser.add_argument("--x", type=float, default=DEFAULT_X, help="Muskingum X (default 0.3)")
    parser.add_argument(
        "--max-area-diff",
        type=float,
        default=DEFAULT_MAX_AREA_DIFF_SQKM,
        help="ABS_DIFF limit (km2) when the CSV has no DA_VALID (default 50)",
    )
    add_store_arguments(parser)
    return parse_with_config(parser, argv, required=("rivers", "gauges"))


def main(argv: list[str] | None = None) -> None:
    """Convert and write the schema folder."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rivers = [Path(r) for p in args.rivers for r in (sorted(glob.glob(str(p))) or [p])]
    tables = convert_merit(
        rivers,
        args.gauges,
        attributes=args.attributes,
        attribute_names=args.attribute_names,
        default_x=args.x,
        max_area_diff_sqkm=args.max_area_diff,
    )
    write_outputs(args, tables)


if __name__ == "__main__":
    main()
