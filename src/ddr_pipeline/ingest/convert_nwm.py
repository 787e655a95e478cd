"""Convert an NWM channel domain (RouteLink, LAKEPARM, hourly CHRTOUT) with its lakes into the schema.

Usage (see docs/datasets/nwm.md; from the project root):
  ddr-convert-nwm --routelink RouteLink.nc --lakeparm LAKEPARM.nc --chrtout 'dir/*.CHRTOUT_DOMAIN1'
      [--usgs-timeslices 'dir/*.usgsTimeSlice.ncdf'] [--reservoir-index FILE]
      [--lakeparm-subset] [--missing-lakes-as-channels]
      [--name nwm_domain] [--out data/01_raw/<name>] [--source TEXT] [--license TEXT]
"""

from __future__ import annotations

import argparse
import glob
import logging
from pathlib import Path

from ddr_pipeline.data import assimilation_obs
from ddr_pipeline.ingest import nwm_domain
from ddr_pipeline.ingest.cli import RAW_DATA, add_common_arguments

NAME = "nwm_domain"
logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routelink", type=Path, required=True, help="NWM RouteLink netCDF")
    parser.add_argument("--lakeparm", type=Path, required=True, help="NWM LAKEPARM netCDF")
    parser.add_argument("--chrtout", required=True, help="glob of hourly CHRTOUT files")
    parser.add_argument("--usgs-timeslices", help="glob of NWM usgsTimeSlice files (optional)")
    parser.add_argument(
        "--reservoir-index",
        type=Path,
        help="NWM reservoir_index file: adds the lakes' nwm_reservoir_type column",
    )
    parser.add_argument(
        "--lakeparm-subset",
        action="store_true",
        help="LAKEPARM covers a larger domain: drop its lakes on no RouteLink link (logged)",
    )
    parser.add_argument(
        "--missing-lakes-as-channels",
        action="store_true",
        help="route waterbodies absent from LAKEPARM as channels (default: an error)",
    )
    parser.add_argument("--source", default="", help="provenance written into the stores/lakes")
    parser.add_argument("--license", default="", help="licence written into the stores")
    add_common_arguments(parser, NAME)
    return parser.parse_args(argv)


def _files(pattern: str, what: str) -> list[str]:
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"{what}: no file matches {pattern!r}")
    return files


def main(argv: list[str] | None = None) -> None:
    """Convert and write the schema folder."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    chrtout = nwm_domain.read_chrtout(
        _files(args.chrtout, "--chrtout"),
        (nwm_domain.LATERAL_VARIABLE, nwm_domain.STREAMFLOW_VARIABLE),
    )
    slices = None
    if args.usgs_timeslices:
        paths = _files(args.usgs_timeslices, "--usgs-timeslices")
        slices = assimilation_obs.read_usgs_timeslices(paths)
    domain = nwm_domain.build_nwm_domain(
        nwm_domain.read_routelink(args.routelink),
        nwm_domain.read_lakeparm(args.lakeparm),
        chrtout,
        timeslices=slices,
        reservoir_types=(
            nwm_domain.read_reservoir_types(args.reservoir_index) if args.reservoir_index else None
        ),
        missing="channel" if args.missing_lakes_as_channels else "error",
        extra="drop" if args.lakeparm_subset else "error",
        attrs={"source": args.source, "license": args.license},
    )
    out = args.out or RAW_DATA / args.name
    written = nwm_domain.write_nwm_domain(domain, out)
    logger.info(
        "wrote %s: %d reaches (%d lake links collapsed), %d lakes, %d gauges, %d hours",
        ", ".join(p.name for p in written),
        len(domain.reaches),
        domain.collapsed.removed.size,
        len(domain.lakes),
        len(domain.gauges),
        domain.lateral_inflow.sizes["time"],
    )


if __name__ == "__main__":
    main()
