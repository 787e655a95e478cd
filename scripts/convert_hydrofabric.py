"""Convert a NOAA-OWP / Lynker hydrofabric v2.2 GeoPackage (+ stores) into the input schema.

Usage (see docs/datasets/lynker_hydrofabric.md):
  .venv/bin/python scripts/convert_hydrofabric.py GPKG [--gauges CSV] [--attributes TABLE|STORE]
      [--lateral-inflow STORE] [--observations STORE] [--forcings STORE] [--start D --end D]
      [--adjacency] [--out data/01_raw/lynker_hydrofabric] [--config conf/lynker_hydrofabric/sources.yml]

Stores are local zarr paths, local Icechunk repositories or ``s3://`` URLs (read anonymously).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

from ddr_pipeline.data import stores
from ddr_pipeline.data.adjacency import write_adjacency
from ddr_pipeline.data.hydrofabric import convert_hydrofabric, divide_to_reach, read_flowpaths

REPO_ROOT = Path(__file__).resolve().parents[1]
NAME = "lynker_hydrofabric"


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the conversion CLIs: time-series stores, period, fill rule, adjacency."""
    parser.add_argument("--lateral-inflow", help="Qr(divide_id, time) store (zarr/icechunk/s3)")
    parser.add_argument("--observations", help="streamflow(gage_id, time) store")
    parser.add_argument("--forcings", help="P/PET/Temp(divide_id, time) store")
    parser.add_argument("--start", help="first day (YYYY-MM-DD) of the stores to write")
    parser.add_argument("--end", help="last day (YYYY-MM-DD) of the stores to write")
    parser.add_argument(
        "--missing-fill",
        type=float,
        default=stores.DDR_FILL_M3S,
        help="Qr (m3/s) for divides absent from the store (default 0.001, as DDR)",
    )
    parser.add_argument(
        "--missing-error",
        action="store_true",
        help="fail when divides are absent from the lateral-inflow store",
    )
    parser.add_argument("--region", default=stores.DEFAULT_REGION, help="AWS region of s3 stores")
    parser.add_argument(
        "--adjacency",
        action="store_true",
        help="also write <out>/adjacency.zarr (DDR COO layout, per-gauge groups)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML file whose `sources:` block gives defaults for these options",
    )


def parse_with_config(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    """Parse ``argv``; values of a ``--config`` file's ``sources:`` block act as defaults."""
    args, _ = parser.parse_known_args(argv)
    if args.config is not None:
        sources = (yaml.safe_load(args.config.read_text()) or {}).get("sources", {})
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(sources) - known)
        if unknown:
            parser.error(f"{args.config}: unknown sources key(s) {', '.join(unknown)}")
        parser.set_defaults(**sources)
    args = parser.parse_args(argv)
    required = [a.dest for a in parser._actions if a.dest in ("gpkg", "rivers")]
    if any(getattr(args, name) in (None, []) for name in required):
        parser.error(f"missing {', '.join(required)} (argument or `sources:` in --config)")
    return args


def write_stores(
    args: argparse.Namespace,
    out: Path,
    reach_ids: object,
    gage_ids: list[str],
    divide_map: pd.Series | None = None,
) -> None:
    """Write the schema's zarr stores from the stores given on the command line."""

    def source(location: str | None) -> stores.StoreSource | None:
        return stores.StoreSource(location, region=args.region) if location else None

    period = (args.start, args.end) if args.start and args.end else None
    rule = stores.MissingRule("error" if args.missing_error else "fill", args.missing_fill)
    stores.write_domain_stores(
        out,
        reach_ids,
        gage_ids,
        lateral_inflow=source(args.lateral_inflow),
        observations=source(args.observations),
        forcings=source(args.forcings),
        period=period,
        missing_inflow=rule,
        divide_to_reach=divide_map,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gpkg", nargs="?", type=Path, help="hydrofabric v2.2 GeoPackage")
    parser.add_argument("--name", default=NAME, help=f"geodataset name (default {NAME})")
    parser.add_argument("--out", type=Path, help="schema folder (default data/01_raw/<name>)")
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
    add_store_arguments(parser)
    return parse_with_config(parser, argv)


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
    out = args.out or REPO_ROOT / "data" / "01_raw" / args.name
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
    for path in tables.write(out):
        print(f"wrote {path}")
    write_stores(args, out, reach_ids, tables.gauges["STAID"].astype(str).tolist(), divide_map)
    if args.adjacency:
        write_adjacency(out / "adjacency.zarr", tables.reaches, tables.gauges, args.name)
        print(f"wrote {out / 'adjacency.zarr'}")
    print(f"{args.name}: {len(tables.reaches)} reaches, {len(tables.gauges)} gauges -> {out}")


if __name__ == "__main__":
    main()
