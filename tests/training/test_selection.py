"""Selection protocol (blind to the test period), seed ensembles and planted-parameter tools."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from training_synthetic import TRUE_PARAMS, make_twin, true_n, twin_training_params

from ddr_pipeline.config.training import ConfigError, load_training_config
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.experiments.ensemble import ensemble_report, member_config
from ddr_pipeline.experiments.identifiability import recovery, synthetic_observations
from ddr_pipeline.experiments.selection import (
    Split,
    choose,
    evaluate_candidate,
    training_period_inputs,
    with_overrides,
)
from ddr_pipeline.inference.gauges import GaugePrediction

SPLIT = Split(fit_end="2000-03-05", warmup_days=5)


def _quick_params() -> dict:
    params = twin_training_params()
    params["experiment"].update(epochs=1, rho=30)
    return params


def test_selection_inputs_hold_only_the_training_period() -> None:
    ds, _, _ = make_twin()
    inputs = training_period_inputs(ds)
    assert inputs.dates[-1] == pd.Timestamp("2000-03-30")
    assert inputs.observations.shape[0] == 90
    assert set(inputs.periods) == {"train"}
    with pytest.raises(KeyError, match="test"):
        inputs.period("test")


def test_selection_scores_do_not_depend_on_the_test_period() -> None:
    """Scrambling every test-period input (observations, inflow, forcings) changes nothing."""
    ds, gauges, stats = make_twin()
    scrambled = ds.copy(deep=True)
    test = scrambled["time"] > pd.Timestamp("2000-03-30")
    for name in ("observations", "lateral_inflow", "forcings"):
        scrambled[name] = scrambled[name].where(~test, scrambled[name] * 7.0 + 3.0)
    runs = [
        evaluate_candidate(
            _quick_params(),
            {"routing.x": "cunge"},
            0,
            training_period_inputs(d),
            gauges,
            stats,
            SPLIT,
        )  # fmt: skip
        for d in (ds, scrambled)
    ]
    assert runs[0] == runs[1]
    assert np.isfinite(runs[0]["score"]) and runs[0]["time_all_gauges"] > 0
    full = ModelInputs.from_dataset(ds)
    with pytest.raises(RuntimeError, match="training_period_inputs"):
        evaluate_candidate(_quick_params(), {}, 0, full, gauges, stats, SPLIT)


def test_overrides_and_choice() -> None:
    params = with_overrides(_quick_params(), {"routing.celerity": "exact", "loss.name": "nse"})
    assert params["routing"] == {"celerity": "exact"} and params["loss"]["name"] == "nse"
    with pytest.raises(KeyError, match="'seed' is not a section"):
        with_overrides(_quick_params(), {"experiment.seed.x": 1})
    with pytest.raises(ConfigError, match="training.nope"):
        load_training_config(with_overrides(_quick_params(), {"nope.key": 1}))
    results = pd.DataFrame(
        {"candidate": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "score": [0.5, 0.7, 0.65, 0.6]}
    )
    chosen, summary = choose(results, ["a", "b"])
    assert chosen == "b"  # mean 0.625 > 0.6
    assert summary.loc["a", "score_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))


def test_member_configs_differ_only_in_seed_and_name() -> None:
    config = load_training_config(_quick_params())
    members = [member_config(config, k) for k in range(3)]
    assert [m.experiment.seed for m in members] == [0, 1, 2]
    assert [m.run_name for m in members] == ["twin-m0", "twin-m1", "twin-m2"]
    assert members[2].model_dump(exclude={"experiment", "run_name"}) == config.model_dump(
        exclude={"experiment", "run_name"}
    )


def test_ensemble_report_scores_mean_members_and_spread() -> None:
    rng = np.random.default_rng(0)
    dates = pd.date_range("2000-01-01", periods=50)
    observed = rng.uniform(1.0, 5.0, (3, 50))
    observed[2, :10] = np.nan  # 80 % valid: not well observed
    sims = [observed + rng.normal(0, s, observed.shape) for s in (0.5, 0.5, 0.5)]
    preds = [GaugePrediction(("g1", "g2", "g3"), dates, np.nan_to_num(p, nan=1.0), observed)
             for p in sims]  # fmt: skip
    split = {"g1": "train", "g2": "validation", "g3": "train"}
    report = ensemble_report(preds, split)
    assert report.members.shape[0] == 3
    assert report.mean["all_gauges"] == 2 and report.mean["validation_gauges"] == 1
    mean_sim = np.mean([p.simulated for p in preds], axis=0)
    ss = np.nansum((mean_sim[1] - observed[1]) ** 2)
    expected = 1 - ss / np.nansum((observed[1] - observed[1].mean()) ** 2)
    assert report.mean["validation_nse_median"] == pytest.approx(expected, rel=1e-12)
    # averaging independent errors beats every member
    assert report.mean["all_nse_median"] > report.members["all_nse_median"].max()
    assert report.spread.loc["all_nse_median", "min"] == report.members["all_nse_median"].min()
    assert (
        (report.per_gauge["band_coverage"] > 0) & (report.per_gauge["band_coverage"] <= 1)
    ).all()
    with pytest.raises(ValueError, match="different gauges"):
        ensemble_report([preds[0], dataclasses.replace(preds[1], staids=("a", "b", "c"))], split)


def test_synthetic_observations_reproduce_a_known_routing() -> None:
    """Planting the twin's truth (negligible leakance) reproduces its observations; the real
    observation gaps are kept; noise is multiplicative with the requested spread."""
    ds, gauges, _ = make_twin()
    ds["observations"][:10, 0] = np.nan
    inputs = training_period_inputs(ds)
    config = load_training_config(_quick_params())
    everyone = GaugeSet.from_table(gauges, inputs, None)
    a0 = inputs.attributes_raw[:, 0].astype(np.float64)
    n_reach = len(inputs.reach_ids)
    planted = {
        "n": true_n((a0 - 50.0) / 10.0),
        "q_spatial": np.full(n_reach, TRUE_PARAMS["q_spatial"]),
        "top_width": np.full(n_reach, TRUE_PARAMS["top_width"]),
        "side_slope": np.full(n_reach, TRUE_PARAMS["side_slope"]),
        "K_D_delta": np.full(n_reach, -30.0),
        "d_gw": np.full(n_reach, 1.0),
    }
    synthetic = synthetic_observations(inputs, everyone, planted, config)
    np.testing.assert_allclose(synthetic, inputs.observations, rtol=2e-5, equal_nan=True)
    noisy = synthetic_observations(inputs, everyone, planted, config, noise=0.1, seed=1)
    ratio = np.log(noisy / synthetic)
    assert np.isnan(noisy[:10, 0]).all()
    assert np.nanstd(ratio) == pytest.approx(0.1, rel=0.1)
    table = recovery(planted, np.arange(n_reach), {"n": planted["n"], "d_gw": 2 * planted["d_gw"]})
    assert table.loc["n", "pearson"] == pytest.approx(1.0)
    assert np.isnan(table.loc["d_gw", "pearson"])  # constant field: nothing to correlate
    assert torch.get_default_dtype() == torch.float32
