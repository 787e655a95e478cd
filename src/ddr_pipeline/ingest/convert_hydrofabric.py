"""Convert a NOAA-OWP / Lynker hydrofabric v2.2 GeoPackage (+ stores) into the input schema.

Usage (see docs/datasets/lynker_hydrofabric.md):
  ddr-convert-hydrofabric GPKG [--gauges CSV] [--attributes TABLE|STORE]
      [--lateral-inflow STORE] [--observations STORE] [--forcings STORE] [--start D --end D]
      [--adjacency] [--out data/01_raw/lynker_hydrofabric] [--config conf/lynker_hydrofabric/sources.yml]
      [--missing-lakes-as-channels] [--lake-nwm-defaults]

The GeoPackage's lake layer (when it has rows) becomes ``lakes.parquet`` (docs/datasets/nwm.md).

Stores are local zarr paths, local Icechunk repositories or ``s3://`` URLs (read anonymously).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ddr_pipeline.ingest import stores
from ddr_pipeline.ingest.cli import (
    add_common_arguments,
    add_store_arguments,
    parse_with_config,
    write_outputs,
)
from ddr_pipeline.ingest.hydrofabric import convert_hydrofabric, divide_to_reach, read_flowpaths
from ddr_pipeline.ingest.hydrofabric_lakes import hydrofabric_lakes

NAME = "lynker_hydrofabric"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gpkg", nargs="?", type=Path, help="hydrofabric v2.2 GeoPackage")
    add_common_arguments(parser, NAME)
    parser.add_argument("--gauges", type=Path, help="DDR gauge CSV restricting the gauges")
    parser.add_argument(
        "--attributes",
        help="attribute table (.parquet/.csv keyed by divide_id) "
        "or store (divide_id coordinate); default: the divide-attributes layer",
    )
    parser.add_argument(
        "--attribute-names",
        type=lambda s: s.split(","),
        help="comma-separated attribute names (default: all)",
    )
    parser.add_argument(
        "--missing-lakes-as-channels",
        action="store_true",
        help="route flowpaths in waterbodies the lake layer lacks as channels (default: error)",
    )
    parser.add_argument(
        "--lake-nwm-defaults",
        action="store_true",
        help="fill missing lake coefficients/lengths (e.g. Dam_Length) with NWM's defaults",
    )
    add_store_arguments(parser)
    return parse_with_config(parser, argv, required=("gpkg",))


def _attributes(args: argparse.Namespace) -> tuple[pd.DataFrame | None, bool]:
    """(attribute table, is_store) from ``--attributes``."""
    if not args.attributes:
        return None, False
    if str(args.attributes).endswith(".parquet"):
        return pd.read_parquet(args.attributes), False
    if str(args.attributes).endswith(".csv"):
        return pd.read_csv(args.attributes), False
    return None, True


def main(argv: list[str] | None = None) -> None:
    """Convert and write the schema folder."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    gauge_info = stores.read_gage_info(args.gauges) if args.gauges else None
    table, from_store = _attributes(args)
    tables = convert_hydrofabric(
        args.gpkg, gauge_info=gauge_info, attributes=table, attribute_names=args.attribute_names
    )
    divide_map = divide_to_reach(read_flowpaths(args.gpkg))
    reach_ids = tables.reaches["id"].to_numpy()
    if from_store:
        attrs = stores.read_attributes(
            stores.open_store(args.attributes, region=args.region),
            reach_ids,
            args.attribute_names,
            divide_to_reach=divide_map,
            store=args.attributes,
        )
        tables = replace(tables, attributes=attrs)
    lake_table = hydrofabric_lakes(
        args.gpkg,
        reach_ids,
        missing="channel" if args.missing_lakes_as_channels else "error",
        nwm_defaults=args.lake_nwm_defaults,
    )
    tables = replace(tables, lakes=lake_table)
    write_outputs(args, tables, divide_map)


if __name__ == "__main__":
    main()
