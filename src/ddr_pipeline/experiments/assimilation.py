"""Honest evaluation of streamflow nudging: leave-gauges-out and the forecast-lead curve.

* **Leave-gauges-out**: a random part of the gauges is assimilated; only gauges that are *not*
  assimilated and lie downstream of an assimilated one are scored, against the same model
  without assimilation (open loop), over the same days.
* **Forecast lead**: forecasts are issued every ``every`` days of the scored period from the
  assimilated state (routing, LSTM and nudging states of the run with assimilation up to the
  issue time); each routes ``max_lead`` days with no observation (the correction decays from the
  last one). Skill at lead k (day k after the issue time) is the NSE over the issue times, per
  gauge, at the assimilated gauges and at the held-out downstream ones, next to the open loop's
  NSE over the same days.

Run: ``python -m ddr_pipeline.experiments.assimilation --help`` (docs/data_assimilation.md).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ddr_pipeline import simulation
from ddr_pipeline.data.assimilation_obs import daily_per_step
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.evaluation import metrics
from ddr_pipeline.inference.gauges import trained_source
from ddr_pipeline.model_store.checkpoints import LoadedCheckpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """Gauge columns (into the gauge set) assimilated and scored."""

    assimilated: np.ndarray
    scored: np.ndarray


def split_gauges(
    network_upstream: list[np.ndarray],
    fraction: float,
    seed: int,
    scorable: np.ndarray | None = None,
) -> Split:
    """Assimilate a random ``fraction`` of the gauges; score the others that have an assimilated
    gauge upstream (and are ``scorable``, (G,) bool: enough observations; default all).
    ``network_upstream[g]``: gauge columns upstream of gauge g (itself excluded)."""
    n = len(network_upstream)
    scorable = np.ones(n, bool) if scorable is None else scorable
    rng = np.random.default_rng(seed)
    chosen = np.zeros(n, bool)
    chosen[rng.choice(n, size=round(fraction * n), replace=False)] = True
    scored = [
        g for g in range(n) if scorable[g] and not chosen[g] and chosen[network_upstream[g]].any()
    ]
    return Split(np.flatnonzero(chosen), np.asarray(scored, np.int64))


def upstream_gauges(inputs: ModelInputs, gauges: GaugeSet) -> list[np.ndarray]:
    """Per gauge, the other gauges in its upstream closure (one reach per gauge)."""
    reach = np.array([r[0] for r in gauges.reach_index])
    closure_of = [set(inputs.network.upstream_closure(int(r)).tolist()) for r in reach]
    return [
        np.array([h for h in range(len(reach)) if h != g and reach[h] in closure_of[g]], np.int64)
        for g in range(len(reach))
    ]


@dataclass(frozen=True)
class Study:
    """A trained model on a geodataset, its gauges and the routing settings."""

    ckpt: LoadedCheckpoint
    inputs: ModelInputs
    gauges: GaugeSet
    problem: simulation.RoutingProblem
    settings: simulation.RoutingSettings

    @classmethod
    def build(cls, ckpt: LoadedCheckpoint, inputs: ModelInputs, gauges: GaugeSet) -> Study:
        single = [g for g, r in enumerate(gauges.reach_index) if len(r) == 1]
        if len(single) < len(gauges):
            logger.warning(
                "gauges summing several reaches are left out: %d", len(gauges) - len(single)
            )
        scale = None if gauges.flow_scale is None else gauges.flow_scale[single]
        kept = GaugeSet(
            tuple(gauges.staids[g] for g in single),
            tuple(gauges.reach_index[g] for g in single),
            gauges.obs_column[single],
            scale,
        )
        problem = simulation.gauge_problem(inputs, kept.reach_index, scale)
        settings = simulation.RoutingSettings.from_config(ckpt.config)
        return cls(ckpt, inputs, kept, problem, settings)

    def assimilation(
        self, columns: np.ndarray, gain: float, decay: float
    ) -> simulation.GaugeAssimilation:
        """Nudging of the gauges ``columns`` toward their daily observations."""
        local = np.array([int(self.problem.outputs[g][0]) for g in columns], np.int64)
        daily = self.inputs.observations[:, self.gauges.obs_column[columns]]
        return simulation.GaugeAssimilation(
            local, daily_per_step(daily, 1), self.settings.steps_per_day, gain, decay,
            names=tuple(self.gauges.staids[g] for g in columns),
        )  # fmt: skip

    def rollout(self, start: int, stop: int, da: simulation.GaugeAssimilation | None) -> np.ndarray:
        """(days, G) daily discharge of every gauge, days ``[start, stop)``."""
        return simulation.rollout(self.inputs, self.problem, trained_source(self.ckpt, self.inputs),
                                  self.settings, start, stop, chunk_days=stop - start,
                                  assimilation=da).daily  # fmt: skip

    def observed(self, start: int, stop: int) -> np.ndarray:
        return self.inputs.observations[start:stop][:, self.gauges.obs_column].astype(np.float64)


def leave_gauges_out(
    study: Study, split: Split, days: tuple[int, int], gain: float, decay: float
) -> pd.DataFrame:
    """Per scored gauge: NSE and KGE of the open loop and with assimilation over ``days``
    (routing from day 0: the days before are the spin-up, assimilated too)."""
    start, stop = days
    open_loop = study.rollout(0, stop, None)[start:]
    nudged = study.rollout(0, stop, study.assimilation(split.assimilated, gain, decay))[start:]
    obs = study.observed(start, stop)
    cols = split.scored
    return pd.DataFrame({
        "STAID": [study.gauges.staids[g] for g in cols],
        "nse_open_loop": metrics.nse(open_loop[:, cols].T, obs[:, cols].T),
        "nse_assimilated": metrics.nse(nudged[:, cols].T, obs[:, cols].T),
        "kge_open_loop": metrics.kge(open_loop[:, cols].T, obs[:, cols].T),
        "kge_assimilated": metrics.kge(nudged[:, cols].T, obs[:, cols].T),
    })  # fmt: skip


def forecasts(  # noqa: PLR0913 (the study, its split and the forecast grid)
    study: Study, split: Split, issues: np.ndarray, max_lead: int, *, gain: float, decay: float
) -> np.ndarray:
    """(issues, max_lead, G) daily discharge of forecasts issued at the day positions ``issues``
    (ascending): the run with assimilation routes from day 0 to each issue time carrying its
    states, then each forecast routes ``max_lead`` days from them without observations."""
    da = study.assimilation(split.assimilated, gain, decay)
    source = trained_source(study.ckpt, study.inputs)
    spd = study.settings.steps_per_day
    out = np.empty((issues.size, max_lead, len(study.gauges)), np.float32)
    q = lstm = nud = None
    day = 0
    with torch.no_grad():
        for i, issue in enumerate(issues.tolist()):
            if issue > day:  # the analysis: assimilate up to the issue time
                res = _window(study, source, day, issue, q, lstm, da.window(day, issue, spd, nud))
                q, lstm, nud, day = res.final_state, res.lstm_state, res.assimilation.state, issue
            fc = da.forecast_from(issue * spd)
            res = _window(study, source, issue, issue + max_lead, q, lstm,
                          fc.window(issue, issue + max_lead, spd, nud))  # fmt: skip
            out[i] = res.daily.numpy()
    return out


def _window(study, source, first, last, q, lstm, nudging):  # noqa: ANN001, ANN202, PLR0913, PLR0917
    window = simulation.window_inputs(study.inputs, study.problem, first, last)
    return simulation.rollout_window(study.problem.network, window, source, study.settings,
                                     outputs=study.problem.outputs, initial_state=q,
                                     lstm_state=lstm, nudging=nudging)  # fmt: skip


def lead_skill(study: Study, split: Split, days: tuple[int, int], every: int, max_lead: int,
               *, gain: float, decay: float) -> pd.DataFrame:  # fmt: skip
    """Per lead day, at the assimilated gauges and at the held-out downstream ones: the median
    over gauges of the NSE (over the issue times) of the forecasts and of the open loop on the
    same days, and the per-gauge NSE gain (mean, and how many gauges gain or lose > 0.01; the
    median over gauges alone hides gains when many gauges are unaffected)."""
    start, stop = days
    issues = np.arange(start, stop - max_lead + 1, every)
    fc = forecasts(study, split, issues, max_lead, gain=gain, decay=decay)
    open_loop = study.rollout(0, stop, None)
    obs_all = study.inputs.observations[:, study.gauges.obs_column].astype(np.float64)
    rows = []
    for lead in range(1, max_lead + 1):
        when = issues + lead - 1
        for group, cols in (
            ("assimilated", split.assimilated),
            ("held_out_downstream", split.scored),
        ):
            obs = obs_all[when][:, cols].T
            nse_fc = metrics.nse(fc[:, lead - 1, cols].T, obs)
            nse_ol = metrics.nse(open_loop[when][:, cols].T, obs)
            rows.append({
                "lead_day": lead, "gauges": group, "n_gauges": int(cols.size),
                "n_issues": int(issues.size),
                "median_nse_forecast": float(np.nanmedian(nse_fc)),
                "median_nse_open_loop": float(np.nanmedian(nse_ol)),
                "mean_nse_gain": float(np.nanmean(nse_fc - nse_ol)),
                **_changes(pd.Series(nse_fc - nse_ol)),
            })  # fmt: skip
    return pd.DataFrame(rows)


def _changes(diff: pd.Series, tol: float = 0.01) -> dict[str, int]:
    """Scored gauges whose NSE rose, fell or stayed within ``tol``."""
    return {"nse_better": int((diff > tol).sum()), "nse_worse": int((diff < -tol).sum()),
            "nse_same": int((diff.abs() <= tol).sum())}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--checkpoint", required=True, help="trained model (.pt, run name or MLflow URI)"
    )
    p.add_argument("--model-inputs", required=True, help="model_inputs.zarr of the geodataset")
    p.add_argument("--gauges", required=True, help="gauges.parquet (data_processing output)")
    p.add_argument("--period", nargs=2, required=True, metavar=("START", "END"), help="scored days")
    p.add_argument("--fraction", type=float, default=0.5, help="share of gauges assimilated")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="gauge splits")
    p.add_argument("--gain", type=float, default=1.0)
    p.add_argument("--decay-minutes", type=float, default=120.0)
    p.add_argument("--every", type=int, default=3, help="days between forecast issue times")
    p.add_argument("--max-lead", type=int, default=10, help="forecast length (days)")
    p.add_argument("--min-valid", type=float, default=0.5,
                   help="scored gauges: least share of observed days in the period")  # fmt: skip
    p.add_argument("--out", required=True, help="folder for the tables")
    return p


def main(argv: list[str] | None = None) -> None:
    """Both evaluations for each seed's gauge split; tables and a summary JSON into ``--out``."""
    from ddr_pipeline.data.io import read_zarr
    from ddr_pipeline.model_store.loader import load_trained_model

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    inputs = ModelInputs.from_dataset(read_zarr(args.model_inputs))
    gauges = GaugeSet.from_table(pd.read_parquet(args.gauges), inputs, split=None)
    study = Study.build(load_trained_model(args.checkpoint), inputs, gauges)
    days = tuple(int(inputs.dates.get_loc(pd.Timestamp(d))) for d in args.period)
    days = (days[0], days[1] + 1)
    upstream = upstream_gauges(inputs, study.gauges)
    scorable = np.isfinite(study.observed(*days)).mean(axis=0) >= args.min_valid
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for seed in args.seeds:
        split = split_gauges(upstream, args.fraction, seed, scorable)
        lgo = leave_gauges_out(study, split, days, args.gain, args.decay_minutes)
        lead = lead_skill(
            study, split, days, args.every, args.max_lead, gain=args.gain, decay=args.decay_minutes
        )
        lgo.to_csv(out / f"leave_gauges_out_seed{seed}.csv", index=False)
        lead.to_csv(out / f"forecast_lead_seed{seed}.csv", index=False)
        summary.append({
            "seed": seed, "assimilated": int(split.assimilated.size), "scored": int(split.scored.size),
            **{f"median_{c}": float(lgo[c].median()) for c in lgo.columns if c != "STAID"},
            **_changes(lgo["nse_assimilated"] - lgo["nse_open_loop"]),
        })  # fmt: skip
        logger.info("seed %d: %s", seed, summary[-1])
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
