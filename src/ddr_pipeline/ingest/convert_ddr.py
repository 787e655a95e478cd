"""Convert a DDR dataset bundle (adjacency zarr, gauge CSV, Q', observations, attributes) into the
schema, and a DDR YAML config into the matching project parameters.

Usage (docs/coming_from_ddr.md):
  ddr-convert-ddr --ddr-config examples/juniata/ddrs.yaml --root <ddrs checkout> --name juniata
      [--conf-out conf/juniata] [--out data/01_raw/juniata]
  ddr-convert-ddr --conus-adjacency A.zarr --gages G.csv [--gages-adjacency G.zarr]
      [--attributes A.nc] [--streamflow QR_STORE] [--observations OBS_STORE] [--statistics S.json]
      [--unit-area VAR] [--start D --end D] [--name NAME] [--out DIR]

Options override the config's ``data_sources``. Paths in the config are relative to ``--root``
(DDR configs use paths relative to the DDR checkout).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields, replace
from pathlib import Path

from ddr_pipeline.ingest import stores
from ddr_pipeline.ingest.adjacency import AdjacencyError
from ddr_pipeline.ingest.cli import RAW_DATA, add_common_arguments
from ddr_pipeline.ingest.ddr import (
    DdrBundle,
    DdrError,
    DdrSources,
    compare_statistics,
    convert_ddr,
    inflow_source,
    keep_statistics,
    write_ddr_stores,
)
from ddr_pipeline.ingest.ddr_config import DdrConfigError, convert_ddr_config, load_ddr_config
from ddr_pipeline.ingest.merit import DEFAULT_MAX_AREA_DIFF_SQKM, DEFAULT_X

NAME = "ddr"
SOURCE_OPTIONS = tuple(f.name for f in fields(DdrSources))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, NAME)
    parser.add_argument("--ddr-config", type=Path, help="DDR / ddrs YAML config")
    parser.add_argument("--root", type=Path, default=Path("."), help="base of config paths")
    parser.add_argument("--conf-out", type=Path, help="write the project parameters here")
    for option in SOURCE_OPTIONS:
        parser.add_argument(f"--{option.replace('_', '-')}", dest=option, help=f"DDR {option}")
    parser.add_argument("--attribute-names", type=lambda s: s.split(","), help="comma-separated")
    parser.add_argument("--unit-area", help="attribute variable (km2) for a mm/day Qr")
    parser.add_argument(
        "--streamflow-format",
        choices=("store", "nwm"),
        default="store",
        help="Qr store (DDR, default) or NWM output (qSfcLatRunoff + qBucket by feature_id)",
    )
    parser.add_argument("--x", type=float, default=DEFAULT_X, help="Muskingum X (default 0.3)")
    parser.add_argument("--max-area-diff", type=float, help="ABS_DIFF limit (km2) without DA_VALID")
    parser.add_argument(
        "--license", default="as the DDR bundle", help="`license` attribute of the stores"
    )
    parser.add_argument("--start", help="first day (YYYY-MM-DD) of the stores to write")
    parser.add_argument("--end", help="last day (YYYY-MM-DD) of the stores to write")
    args = parser.parse_args(argv)
    if args.ddr_config is None and not (args.conus_adjacency and args.gages):
        parser.error("give --ddr-config or at least --conus-adjacency and --gages")
    if args.conf_out is not None and args.ddr_config is None:
        parser.error("--conf-out needs --ddr-config")
    return args


def sources_from_args(args: argparse.Namespace, config: dict | None) -> DdrSources:
    """The bundle's sources: the config's ``data_sources`` overridden by explicit options."""
    given = {k: getattr(args, k) for k in SOURCE_OPTIONS if getattr(args, k)}
    if config is None:
        return DdrSources(**given)
    sources = DdrSources.from_config(config, args.root)
    return replace(sources, **given).with_statistics_file(str(config.get("geodataset", "merit")))


def max_area_diff(args: argparse.Namespace, config: dict | None) -> float | None:
    """The gauge ABS_DIFF filter: option, else the config's ``experiment.max_area_diff_sqkm``."""
    if args.max_area_diff is not None:
        return args.max_area_diff
    experiment = (config or {}).get("experiment", {}) or {}
    return experiment.get("max_area_diff_sqkm", DEFAULT_MAX_AREA_DIFF_SQKM)


def write_parameters(args: argparse.Namespace, config: dict) -> None:
    """Write the project parameters for the DDR config; print the keys without an equivalent."""
    converted = convert_ddr_config(config, args.name)
    for path in converted.write(args.conf_out, str(args.ddr_config)):
        print(f"wrote {path}")
    for key, reason in converted.unmapped.items():
        print(f"not carried over as is: {key}: {reason}")


def write_data(args: argparse.Namespace, sources: DdrSources, bundle: DdrBundle) -> Path:
    """Write the schema tables, the daily stores and DDR's statistics; return the folder."""
    out = args.out or RAW_DATA / args.name
    tables = bundle.tables
    paths = tables.write(out)
    reach_ids = tables.reaches["id"].to_numpy()
    paths += write_ddr_stores(
        sources,
        out,
        reach_ids,
        tables.gauges["STAID"].astype(str).tolist(),
        period=(args.start, args.end) if args.start and args.end else None,
        inflow=inflow_source(
            sources, reach_ids, kind=args.streamflow_format, unit_area=args.unit_area
        ),
        license=args.license,
    )
    for path in paths:
        print(f"wrote {path}")
    kept = keep_statistics(bundle, out)
    if kept is not None and tables.attributes is not None:
        print(f"wrote {kept}; DDR's statistics beside the same statistics of the attributes:")
        print(compare_statistics(bundle.statistics, tables.attributes).to_string(index=False))
    return out


def main(argv: list[str] | None = None) -> None:
    """Convert and write the schema folder (and the parameters with ``--conf-out``)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_ddr_config(args.ddr_config) if args.ddr_config else None
    sources = sources_from_args(args, config)
    bundle = convert_ddr(
        sources,
        attribute_names=args.attribute_names,
        default_x=args.x,
        max_area_diff_sqkm=max_area_diff(args, config),
    )
    out = write_data(args, sources, bundle)
    if args.conf_out is not None:
        write_parameters(args, config)
    tables = bundle.tables
    print(f"{args.name}: {len(tables.reaches)} reaches, {len(tables.gauges)} gauges -> {out}")


#: Errors about the user's bundle or config: reported as one line by the console script.
USER_ERRORS = (DdrError, DdrConfigError, AdjacencyError, stores.StoreError, FileNotFoundError)


def run(argv: list[str] | None = None) -> None:
    """``main`` with bundle and config errors reported as one line (the console script)."""
    try:
        main(argv)
    except USER_ERRORS as error:
        raise SystemExit(f"ddr-convert-ddr: {error}") from error


if __name__ == "__main__":
    run()
