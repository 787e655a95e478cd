"""Select the training configuration without the test period, then report the test period once.

Usage (from the project root, after ``kedro run --pipelines data_processing``)::

    python scripts/select_config.py --phase select   # 1979 only: candidates x seeds
    python scripts/select_config.py --phase final    # chosen config: K members, 1980 report

``--phase select`` reads ``model_inputs.zarr`` through
:func:`ddr_pipeline.experiments.selection.training_period_inputs` only (the test period is never loaded;
the log states the dates held in memory) and writes ``selection_runs.csv`` (one row per
candidate and seed; rows already there are not re-run) and ``selection.json`` (the choice).
``--phase members --candidate C --member-ids K...`` trains ensemble members of a candidate on the
whole training period (seeds 0..K-1, weights kept in ``members/<candidate>/``; also 1979 only),
so members can be trained in parallel processes. ``--phase final`` (a separate process) trains
the chosen candidate's missing members, then opens the test period and writes its ensemble
report (``final.json``, ``final_per_gauge.csv``, ``final_hydrographs.png``).
The grid, split and ensemble size come from ``--grid`` (default ``scripts/selection_drb.yml``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
import yaml
from kedro.config import OmegaConfigLoader

from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data.containers import GaugeSet
from ddr_pipeline.evaluation import baselines, plots
from ddr_pipeline.evaluation.scoring import score_gauges, well_observed_medians
from ddr_pipeline.experiments.ensemble import ensemble_inputs, ensemble_report, member_config
from ddr_pipeline.experiments.selection import (
    Split,
    choose,
    evaluate_candidate,
    train_on,
    training_period_inputs,
    with_overrides,
)
from ddr_pipeline.inference.gauges import route_gauges
from ddr_pipeline.models import build_models

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("select_config")


def _training_params() -> dict[str, Any]:
    loader = OmegaConfigLoader(str(ROOT / "conf"), base_env="base", default_run_env="local")
    return dict(loader["parameters"]["training"])


def _normalization_stats(folder: Path) -> dict[str, Any]:
    versions = sorted((folder / "normalization_stats.json").glob("*/normalization_stats.json"))
    if not versions:
        raise FileNotFoundError(f"no normalization_stats.json under {folder}: run data_processing")
    return json.loads(versions[-1].read_text())


def _setup_logging(out: Path, phase: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    handlers = [logging.StreamHandler(sys.stdout), logging.FileHandler(out / f"{phase}.log")]
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, handlers=handlers, force=True)


def select(grid: dict[str, Any], data_dir: Path, out: Path, seeds: list[int] | None) -> None:
    """Phase 1: every candidate x seed (``seeds``: this process's share, default all) on the
    training period only; once every seed's rows exist, write the choice."""
    params = _training_params()
    stats = _normalization_stats(data_dir)
    gauges = pd.read_parquet(data_dir / "gauges.parquet")
    split = Split(**grid["split"])
    with xr.open_zarr(data_dir / "model_inputs.zarr", consolidated=False) as ds:
        inputs = training_period_inputs(ds, gauges, stats)
    for seed in grid["seeds"] if seeds is None else seeds:
        _run_seed(grid, seed, params, stats, gauges, inputs, split, out)
    rows = []
    for seed in grid["seeds"]:
        path = out / f"selection_runs_seed{seed}.csv"
        if path.exists():
            rows += pd.read_csv(path, dtype={"candidate": str}).to_dict(orient="records")
    # Only this grid's candidates count (an --out folder can hold rows of an earlier grid).
    rows = [r for r in rows if r["candidate"] in grid["candidates"]]
    if len(rows) < len(grid["seeds"]) * len(grid["candidates"]):
        logger.info("%d of %d runs done: the choice is made when all seeds are done", len(rows),
                    len(grid["seeds"]) * len(grid["candidates"]))  # fmt: skip
        return
    results = pd.DataFrame(rows)

    chosen, summary = choose(results.drop(columns=["seconds"]), list(grid["candidates"]))
    logger.info("selection summary (means over seeds):\n%s", summary.to_string())
    logger.info("chosen: %s %s", chosen, grid["candidates"][chosen])
    record = {
        "chosen": chosen,
        "overrides": grid["candidates"][chosen] or {},
        "split": grid["split"],
        "seeds": grid["seeds"],
        "inputs_dates": [str(inputs.dates[0].date()), str(inputs.dates[-1].date())],
        "summary": json.loads(summary.to_json(orient="index")),
    }
    (out / "selection.json").write_text(json.dumps(record, indent=2))


def _run_seed(grid, seed, params, stats, gauges, inputs, split, out) -> None:  # noqa: PLR0913, PLR0917
    """Every candidate with one seed; rows appended to ``selection_runs_seed<seed>.csv`` (rows
    already there are not re-run)."""
    path = out / f"selection_runs_seed{seed}.csv"
    rows = (
        pd.read_csv(path, dtype={"candidate": str}).to_dict(orient="records")
        if path.exists()
        else []
    )
    for name, overrides in grid["candidates"].items():
        if any(r["candidate"] == name for r in rows):
            continue
        started = time.perf_counter()
        scores = evaluate_candidate(params, overrides or {}, seed, inputs, gauges, stats, split)
        rows.append({"candidate": name, "seed": seed, **scores,
                     "seconds": time.perf_counter() - started})  # fmt: skip
        logger.info(
            "candidate %s seed %d: score %.4f (time NSE %.4f, space NSE %.4f) in %.0f s",
            name, seed, scores["score"], scores["time_all_nse_median"], scores["space_all_nse_median"],
            rows[-1]["seconds"],
        )  # fmt: skip
        pd.DataFrame(rows).to_csv(path, index=False)


def members(  # noqa: PLR0913, PLR0917 (one argument per input)
    grid: dict[str, Any], candidate: str, member_ids: list[int], data_dir: Path, out: Path
) -> list[tuple[Any, Any]]:
    """Train (or reload from ``out/members/<candidate>/m<k>.pt``) ensemble members of a grid
    candidate on the whole training period; only the training period is loaded."""
    if candidate not in grid["candidates"]:
        raise KeyError(f"no candidate {candidate!r} in the grid: {list(grid['candidates'])}")
    config = load_training_config(
        with_overrides(_training_params(), grid["candidates"][candidate] or {})
    )
    stats = _normalization_stats(data_dir)
    gauges = pd.read_parquet(data_dir / "gauges.parquet")
    with xr.open_zarr(data_dir / "model_inputs.zarr", consolidated=False) as ds:
        inputs = training_period_inputs(ds, gauges, stats)
    folder = out / "members" / candidate
    folder.mkdir(parents=True, exist_ok=True)
    models = []
    for k in member_ids:
        cfg = member_config(config, k)
        path = folder / f"m{k}.pt"
        if path.exists():
            model = build_models(cfg)
            model.load_state_dict(torch.load(path, weights_only=True))
        else:
            started = time.perf_counter()
            model = train_on(cfg, inputs, gauges, inputs.period("train"), stats)
            torch.save(model.state_dict(), path)
            logger.info("%s member %d (seed %d) trained in %.0f s", candidate, k,
                        cfg.experiment.seed, time.perf_counter() - started)  # fmt: skip
        models.append((cfg, model))
    return models


def final(grid: dict[str, Any], data_dir: Path, out: Path, reference: Path) -> None:
    """Phase 2: the chosen configuration, K members on the training period, one test report."""
    choice = json.loads((out / "selection.json").read_text())
    logger.info("selection chose %s %s", choice["chosen"], choice["overrides"])
    trained = members(grid, choice["chosen"], list(range(int(grid["members"]))), data_dir, out)
    logger.info("opening the test period now (members trained on the training period only)")
    gauges = pd.read_parquet(data_dir / "gauges.parquet")
    with xr.open_zarr(data_dir / "model_inputs.zarr", consolidated=False) as ds:
        inputs = ensemble_inputs(ds, gauges, _normalization_stats(data_dir))
    everyone = GaugeSet.from_table(gauges, inputs, None)
    test = inputs.period("test")
    preds = [route_gauges(m, cfg, inputs, everyone, test, warmup_days=30) for cfg, m in trained]
    split = dict(zip(everyone.staids, gauges["split"].astype(str), strict=True))
    report = ensemble_report(preds, split)
    labels = [split[s] for s in everyone.staids]
    result: dict[str, Any] = {"chosen": choice["chosen"], "overrides": choice["overrides"],
                              **report.to_dict()}  # fmt: skip
    product = baselines.load_reference(reference)
    if product is not None:
        ref = baselines.reference_at_gauges(
            product, [inputs.reach_ids[i] for i in everyone.reach_index], preds[0].dates
        ).T.astype(np.float64)
        result["nhm_reference"] = well_observed_medians(
            score_gauges(ref, preds[0].observed, preds[0].staids, labels)
        )
    logger.info("test period report: %s", json.dumps(result, indent=1))
    (out / "final.json").write_text(json.dumps(result, indent=2))
    report.per_gauge.to_csv(out / "final_per_gauge.csv")
    well = report.per_gauge[report.per_gauge["well_observed"]]
    picks = plots.select_gauges(well[well["split"] == "validation"])
    fig = plots.plot_ensemble_hydrographs(
        preds[0].dates, np.stack([p.simulated for p in preds]), preds[0].observed,
        list(everyone.staids), picks, report.per_gauge,
    )  # fmt: skip
    fig.savefig(out / "final_hydrographs.png", dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", choices=["select", "members", "final"], required=True)
    parser.add_argument("--grid", type=Path, default=ROOT / "scripts" / "selection_drb.yml")
    parser.add_argument("--data", type=Path, default=ROOT / "data/05_model_input/drb")
    parser.add_argument("--out", type=Path, default=ROOT / "data/08_reporting/selection")
    parser.add_argument(
        "--reference", type=Path, default=ROOT / "data/01_raw/drb/reference_outflow.zarr"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seeds", type=int, nargs="*", help="select: this process's seeds")
    parser.add_argument("--candidate", help="members: the grid candidate to train")
    parser.add_argument("--member-ids", type=int, nargs="*", help="members: which members")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    suffix = f"_seed{args.seeds[0]}" if args.seeds else ""
    if args.phase == "members":
        suffix = f"_{args.candidate}_m{args.member_ids[0]}"
    _setup_logging(args.out, args.phase + suffix)
    grid = yaml.safe_load(args.grid.read_text())
    if args.phase == "select":
        select(grid, args.data, args.out, args.seeds)
    elif args.phase == "members":
        members(grid, args.candidate, args.member_ids, args.data, args.out)
    else:
        final(grid, args.data, args.out, args.reference)


if __name__ == "__main__":
    main()
