"""Command-line pieces shared by the converters (``ddr-convert-hydrofabric``, ``ddr-convert-merit``).

Options for the time-series stores, the period, the missing-inflow rule and the adjacency store; a
``--config`` YAML whose ``sources:`` block gives defaults; and writing a converted schema folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ddr_pipeline.ingest import stores
from ddr_pipeline.ingest.adjacency import write_adjacency
from ddr_pipeline.ingest.hydrofabric import FabricTables

#: Where converted geodatasets go by default (relative to the project root, the working folder).
RAW_DATA = Path("data") / "01_raw"


def add_common_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--name`` and ``--out`` (default ``data/01_raw/<name>``)."""
    parser.add_argument("--name", default=name, help=f"geodataset name (default {name})")
    parser.add_argument("--out", type=Path, help="schema folder (default data/01_raw/<name>)")


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
    parser: argparse.ArgumentParser, argv: list[str] | None, required: Sequence[str]
) -> argparse.Namespace:
    """Parse ``argv``; a ``--config`` file's ``sources:`` block gives defaults.

    ``required`` names destinations that must be set by an argument or by the config file.
    """
    args, _ = parser.parse_known_args(argv)
    if args.config is not None:
        sources = (yaml.safe_load(args.config.read_text()) or {}).get("sources", {})
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(sources) - known)
        if unknown:
            parser.error(f"{args.config}: unknown sources key(s) {', '.join(unknown)}")
        parser.set_defaults(**sources)
    args = parser.parse_args(argv)
    missing = [name for name in required if getattr(args, name) in (None, [])]
    if missing:
        parser.error(f"missing {', '.join(missing)} (argument or `sources:` in --config)")
    return args


def write_stores(
    args: argparse.Namespace,
    out: Path,
    reach_ids: np.ndarray,
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


def write_outputs(
    args: argparse.Namespace, tables: FabricTables, divide_map: pd.Series | None = None
) -> Path:
    """Write the schema tables, the stores and (``--adjacency``) the adjacency; return the folder."""
    out = args.out or RAW_DATA / args.name
    for path in tables.write(out):
        print(f"wrote {path}")
    gage_ids = tables.gauges["STAID"].astype(str).tolist()
    write_stores(args, out, tables.reaches["id"].to_numpy(), gage_ids, divide_map)
    if args.adjacency:
        write_adjacency(out / "adjacency.zarr", tables.reaches, tables.gauges, args.name)
        print(f"wrote {out / 'adjacency.zarr'}")
    print(f"{args.name}: {len(tables.reaches)} reaches, {len(tables.gauges)} gauges -> {out}")
    return out
