"""New York City's reservoirs on the DRB: the same model with and without level-pool lakes.

Usage (from the project root, after ``kedro run --pipelines data_processing``)::

    python scripts/drb_reservoirs.py [--variants scripts/reservoirs_drb.yml] [--seeds 0 1]

Every variant of the YAML (``variants: {name: {dotted.override: value}}`` on top of the project's
``training`` parameters) is trained on 1979 only, through
:func:`ddr_pipeline.experiments.selection.training_period_inputs` (the test year is not in
memory while anything is fitted). Then the test period opens once: 1980 is routed from 30 warm-up
days for every gauge and scored for the gauges directly below a reservoir (``dam``), the other
gauges downstream of one (``downstream``), the gauges with no reservoir upstream (``free``) and
all of them, beside NHM's calibrated routing on the same gauges. Nothing is selected on 1980:
the variants are reported side by side. Writes ``reservoirs_runs.csv`` (one row per variant,
seed and subset) and ``reservoirs_per_gauge.csv`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from kedro.config import OmegaConfigLoader

from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.evaluation import baselines
from ddr_pipeline.evaluation.scoring import medians, score_gauges
from ddr_pipeline.experiments.ensemble import ensemble_inputs
from ddr_pipeline.experiments.selection import train_on, training_period_inputs, with_overrides
from ddr_pipeline.inference.gauges import route_gauges

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("drb_reservoirs")


def _training_params() -> dict[str, Any]:
    loader = OmegaConfigLoader(str(ROOT / "conf"), base_env="base", default_run_env="local")
    params = dict(loader["parameters"]["training"])
    params["run_name"] = "drb-reservoirs"
    return params


def gauge_classes(inputs: ModelInputs, gauges: GaugeSet) -> list[str]:
    """Per gauge: ``dam`` (its reach is a lake reach), ``downstream`` (a lake upstream) or
    ``free``."""
    lakes = set() if inputs.lakes is None else set(inputs.lakes.reach_index.tolist())
    classes = []
    for reaches in gauges.reach_index:
        upstream = set(np.asarray(inputs.network.upstream_closure(reaches)).tolist())
        if lakes & set(np.asarray(reaches).tolist()):
            classes.append("dam")
        elif lakes & upstream:
            classes.append("downstream")
        else:
            classes.append("free")
    return classes


def _subset_rows(table: pd.DataFrame, label: str) -> list[dict[str, Any]]:
    well = table[table["well_observed"]]
    rows = [{"subset": "all", "gauges": len(well), **medians(well)}]
    for subset in ("dam", "downstream", "free"):
        part = well[well["class"] == subset]
        rows.append({"subset": subset, "gauges": len(part), **medians(part)})
    return [{"model": label, **row} for row in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=Path, default=ROOT / "scripts" / "reservoirs_drb.yml")
    parser.add_argument("--data", type=Path, default=ROOT / "data/05_model_input/drb")
    parser.add_argument("--out", type=Path, default=ROOT / "data/08_reporting/reservoirs")
    parser.add_argument("--reference", type=Path,
                        default=ROOT / "data/01_raw/drb/reference_outflow.zarr")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--warmup-days", type=int, default=365,
                        help="days routed before 1980, unscored (default 365: all of 1979, so "
                             "the reservoirs enter 1980 at a level the model produced)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    variants: dict[str, dict[str, Any]] = yaml.safe_load(args.variants.read_text())["variants"]
    gauges = pd.read_parquet(args.data / "gauges.parquet")
    stats_file = sorted((args.data / "normalization_stats.json").glob("*/normalization_stats.json"))
    stats = json.loads(stats_file[-1].read_text())
    params = _training_params()

    trained = []
    with xr.open_zarr(args.data / "model_inputs.zarr", consolidated=False) as ds:
        train_inputs = training_period_inputs(ds, gauges, stats)
    for name, overrides in variants.items():
        for seed in args.seeds:
            config = load_training_config(
                with_overrides(params, {**(overrides or {}), "experiment.seed": seed})
            )
            started = time.perf_counter()
            model = train_on(config, train_inputs, gauges, (0, len(train_inputs.dates)), stats)
            logger.info("%s seed %d trained on 1979 in %.0f s", name, seed,
                        time.perf_counter() - started)  # fmt: skip
            trained.append((name, seed, config, model))

    logger.info("opening the test period now (every variant trained on 1979 only)")
    with xr.open_zarr(args.data / "model_inputs.zarr", consolidated=False) as ds:
        inputs = ensemble_inputs(ds, gauges, stats)
    everyone = GaugeSet.from_table(gauges, inputs, None)
    classes = gauge_classes(inputs, everyone)
    test = inputs.period("test")
    rows, per_gauge = [], []
    for name, seed, config, model in trained:
        pred = route_gauges(model, config, inputs, everyone, test, warmup_days=args.warmup_days)
        table = score_gauges(pred.simulated, pred.observed, pred.staids).assign(
            **{"class": classes, "model": name, "seed": seed}
        )
        per_gauge.append(table)
        rows += [{**row, "seed": seed} for row in _subset_rows(table, name)]
    reference = baselines.load_reference(args.reference)
    ref = baselines.reference_at_gauges(
        reference, [inputs.reach_ids[i] for i in everyone.reach_index], pred.dates
    ).T.astype(np.float64)
    table = score_gauges(ref, pred.observed, pred.staids).assign(
        **{"class": classes, "model": "nhm_reference", "seed": -1}
    )
    per_gauge.append(table)
    rows += [{**row, "seed": -1} for row in _subset_rows(table, "nhm_reference")]
    runs = pd.DataFrame(rows)
    runs.to_csv(args.out / "reservoirs_runs.csv", index=False)
    scores = pd.concat(per_gauge)
    scores.to_csv(args.out / "reservoirs_per_gauge.csv", index=False)
    logger.info("1980 medians (well observed):\n%s", runs.to_string(index=False))
    dams = scores[scores["class"] == "dam"].groupby(["gage_id", "model"])[["nse", "kge"]].mean()
    logger.info("1980 at the dams (mean over seeds):\n%s", dams.unstack("model").to_string())


if __name__ == "__main__":
    main()
