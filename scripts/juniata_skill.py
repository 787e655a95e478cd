"""DDR's Juniata benchmark, seed by seed: selection on the training years, one test report.

Usage (from the project root, after
``DDR_GEODATASET=juniata kedro run --env juniata --pipelines data_processing``)::

    python scripts/juniata_skill.py select --grid scripts/selection_juniata.yml
    python scripts/juniata_skill.py test --candidate ddr --seeds 42 7 123 2026

``select`` loads the training period only (:func:`training_period_inputs`: 1981-10-01 ..
1995-09-30, the test years are never read), trains every candidate of the grid (config overrides
of ``conf/juniata``) per seed on the days up to ``split.fit_end`` (water years 1982-1991) and
scores the gauge on the water years after it (1992-1995), routing from ``warmup_days`` earlier.
It writes ``select_runs.csv`` (rows already there are not re-run) and ``selection.json`` (the
candidate with the highest mean validation NSE over the seeds).

``test`` trains one candidate per seed on the whole training period (DDR's protocol: the
``conf/juniata`` training section plus the candidate's overrides) and scores 1995-10-01 ..
2010-09-30 (routing from 30 days earlier, as the evaluation pipeline does), next to the
summed-Q' baseline, the untrained mid-range baseline and the model's own starting point (the
initial weights). It writes ``test_<candidate>.csv`` (one row per seed and model) and prints the
per-seed table with its mean. Timings per seed (training, test routing) are in the rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
import yaml

from ddr_pipeline.config.training import TrainingConfig, load_training_config
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.evaluation import baselines, metrics
from ddr_pipeline.experiments.selection import train_on, training_period_inputs, with_overrides
from ddr_pipeline.inference.gauges import route_gauges
from ddr_pipeline.models import RoutingModel, build_models
from ddr_pipeline.project.config_loader import ProjectConfigLoader
from ddr_pipeline.settings import CONFIG_LOADER_ARGS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "05_model_input" / "juniata"
logger = logging.getLogger("juniata_skill")
SCORES = ("nse", "kge")


def _training_params() -> dict[str, Any]:
    loader = ProjectConfigLoader(str(ROOT / "conf"), env="juniata", **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"]["training"])


def _stats() -> dict[str, Any]:
    path = DATA / "normalization_stats.json"
    versions = sorted(path.glob("*/normalization_stats.json")) if path.is_dir() else [path]
    if not versions or not versions[-1].exists():
        raise FileNotFoundError(f"no normalization statistics under {path}: run data_processing")
    return json.loads(versions[-1].read_text())


def _config(overrides: dict[str, Any], seed: int) -> TrainingConfig:
    return load_training_config(
        with_overrides(_training_params(), {**overrides, "experiment.seed": seed})
    )


def _scores(simulated: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    table = metrics.metrics_table(simulated, observed, ["g"], list(SCORES))
    return {m: float(table[m].iloc[0]) for m in SCORES}


def _route(model: RoutingModel, config: TrainingConfig, inputs: ModelInputs,
           gauges: GaugeSet, days: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    pred = route_gauges(model, config, inputs, gauges, days, warmup_days=30)
    return pred.simulated, pred.observed


def select(grid: dict[str, Any], out: Path) -> None:
    """Every candidate x seed on the training years only; writes the choice."""
    params_seeds = [int(s) for s in grid["seeds"]]
    gauges_table = pd.read_parquet(DATA / "gauges.parquet")
    stats = _stats()
    with xr.open_zarr(DATA / "model_inputs.zarr", consolidated=False) as ds:
        inputs = training_period_inputs(ds)
    gauges = GaugeSet.from_table(gauges_table, inputs, None)
    fit_stop = inputs.day_range(inputs.dates[0], grid["split"]["fit_end"])[1]
    path = out / "select_runs.csv"
    rows = pd.read_csv(path).to_dict(orient="records") if path.exists() else []
    for name, overrides in grid["candidates"].items():
        for seed in params_seeds:
            if any(r["candidate"] == name and r["seed"] == seed for r in rows):
                continue
            config = _config(overrides or {}, seed)
            started = time.perf_counter()
            model = train_on(config, inputs, gauges_table, (0, fit_stop), stats)
            sim, obs = _route(model, config, inputs, gauges, (fit_stop, len(inputs.dates)))
            row = {"candidate": name, "seed": seed, **_scores(sim, obs),
                   "seconds": time.perf_counter() - started}  # fmt: skip
            logger.info("%s", row)
            rows.append(row)
            pd.DataFrame(rows).to_csv(path, index=False)
    results = pd.DataFrame(rows)
    summary = results.groupby("candidate")[list(SCORES)].agg(["mean", "min", "count"])
    logger.info("validation (water years after %s):\n%s", grid["split"]["fit_end"], summary)
    complete = summary[summary[("nse", "count")] == len(params_seeds)]
    chosen = str(complete[("nse", "mean")].idxmax())
    record = {
        "chosen": chosen,
        "overrides": grid["candidates"][chosen] or {},
        "split": grid["split"],
        "seeds": params_seeds,
        "inputs_dates": [str(inputs.dates[0].date()), str(inputs.dates[-1].date())],
        "validation_nse_mean": {c: float(v) for c, v in summary[("nse", "mean")].items()},
        "validation_kge_mean": {c: float(v) for c, v in summary[("kge", "mean")].items()},
    }
    (out / "selection.json").write_text(json.dumps(record, indent=2))
    logger.info("chosen: %s %s", chosen, record["overrides"])


def test(grid: dict[str, Any], candidate: str, seeds: list[int], out: Path) -> None:
    """Train ``candidate`` per seed on the training years and score the test years once."""
    overrides = grid["candidates"][candidate] or {}
    gauges_table = pd.read_parquet(DATA / "gauges.parquet")
    stats = _stats()
    with xr.open_zarr(DATA / "model_inputs.zarr", consolidated=False) as ds:
        inputs = ModelInputs.from_dataset(ds)
    gauges = GaugeSet.from_table(gauges_table, inputs, None)
    train, days = inputs.period("train"), inputs.period("test")
    observed = inputs.observations[days[0] : days[1]][:, gauges.obs_column].T
    summed = baselines.summed_lateral_inflow(
        inputs.lateral_inflow[days[0] : days[1]], inputs.network, gauges.reach_index,
        gauges.flow_scale,
    ).T  # fmt: skip
    rows = [{"candidate": candidate, "model": "summed_lateral_inflow", "seed": None,
             **_scores(summed, observed)}]  # fmt: skip
    path = out / f"test_{candidate}.csv"
    for seed in seeds:
        config = _config(overrides, seed)
        initial = build_models(config)
        sim, obs = _route(initial, config, inputs, gauges, days)
        rows.append({"candidate": candidate, "model": "initial", "seed": seed,
                     **_scores(sim, obs)})  # fmt: skip
        started = time.perf_counter()
        model = train_on(config, inputs, gauges_table, train, stats)
        trained_s = time.perf_counter() - started
        started = time.perf_counter()
        sim, obs = _route(model, config, inputs, gauges, days)
        rows.append({"candidate": candidate, "model": "trained", "seed": seed,
                     **_scores(sim, obs), "train_seconds": trained_s,
                     "test_seconds": time.perf_counter() - started,
                     "load": os.getloadavg()[0]})  # fmt: skip
        logger.info("%s", rows[-1])
        pd.DataFrame(rows).to_csv(path, index=False)
    table = pd.DataFrame(rows)
    trained = table[table["model"] == "trained"]
    logger.info("test years, %s:\n%s\nmean NSE %.3f KGE %.3f", candidate, table.to_string(),
                trained["nse"].mean(), trained["kge"].mean())  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Command line: ``select`` or ``test``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=["select", "test"])
    parser.add_argument("--grid", type=Path, default=ROOT / "scripts" / "selection_juniata.yml")
    parser.add_argument("--candidate", default="ddr")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 123, 2026])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "data" / "08_reporting" / "juniata_skill"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    handlers = [
        logging.StreamHandler(sys.stdout),
        logging.FileHandler(args.out / f"{args.phase}.log"),
    ]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=handlers)
    grid = yaml.safe_load(args.grid.read_text())
    if args.phase == "select":
        select(grid, args.out)
    else:
        test(grid, args.candidate, args.seeds, args.out)


if __name__ == "__main__":
    main()
