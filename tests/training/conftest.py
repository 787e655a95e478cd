"""Fixtures: the synthetic twin and a factory for trainers over it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from training_synthetic import TEST_PERIOD, TRAIN_PERIOD, make_twin

from ddr_pipeline.config.training import load_training_config
from ddr_pipeline.data.containers import GaugeSet, ModelInputs
from ddr_pipeline.models import build_models
from ddr_pipeline.training import Trainer, ValidationSpec


@pytest.fixture(scope="session")
def twin():
    """``(ModelInputs, gauges table, normalisation stats, dataset)`` of the synthetic twin."""
    ds, gauges, stats = make_twin()
    return ModelInputs.from_dataset(ds), gauges, stats, ds


@pytest.fixture
def make_trainer(twin, tmp_path: Path) -> Callable[..., Trainer]:
    """Build a :class:`Trainer` on the twin from a ``training`` params dict.

    Without ``models_dir`` every trainer gets its own folder (one training attempt per run folder).
    """
    inputs, gauges, stats, _ = twin
    built = []

    def factory(params: dict[str, Any], models_dir: Path | None = None, **kwargs: Any) -> Trainer:
        config = load_training_config(params)
        built.append(config)
        own_folder = tmp_path / ("models" if len(built) == 1 else f"models-{len(built)}")
        validation = None
        if config.experiment.validation_every is not None:
            start, stop = inputs.day_range(*TEST_PERIOD)
            validation = ValidationSpec(
                inputs, GaugeSet.from_table(gauges, inputs, "validation"), start - 5, stop, 5
            )
        return Trainer(
            config=config,
            model=build_models(config),
            inputs=inputs,
            train_gauges=GaugeSet.from_table(gauges, inputs, "train"),
            period=inputs.day_range(*TRAIN_PERIOD),
            normalization_stats=stats,
            models_dir=models_dir or own_folder,
            validation=validation,
            progress=False,
            **kwargs,
        )

    return factory
