"""Per-reach fields of learned parameters (for maps and tables)."""

from __future__ import annotations

import numpy as np

from ddr_pipeline import simulation
from ddr_pipeline.data.containers import ModelInputs
from ddr_pipeline.inference.gauges import trained_source
from ddr_pipeline.model_store.checkpoints import LoadedCheckpoint


def daily_parameters(ckpt: LoadedCheckpoint) -> list[str]:
    """Learned parameters that vary per day (predicted by the LSTM)."""
    return list(ckpt.config.cuda_lstm.learnable_parameters) if ckpt.config.cuda_lstm else []


def parameter_fields(
    ckpt: LoadedCheckpoint, inputs: ModelInputs, period: tuple[str, str], chunk_days: int
) -> dict[str, np.ndarray]:
    """Per-reach learned parameters over ``period`` (daily ones as ``"mean <name>"``)."""
    first, stop = inputs.day_range(*period)
    problem = simulation.reach_problem(inputs)
    source = trained_source(ckpt, inputs)
    means = simulation.parameter_means(inputs, problem, source, first, stop, chunk_days=chunk_days)
    names = {"p_spatial": "p"}
    learned = [p for p in ckpt.config.learned_parameters if names.get(p, p) in means]
    daily = daily_parameters(ckpt)
    fields = {f"mean {p}" if p in daily else p: means[names.get(p, p)] for p in learned}
    if ckpt.config.params.use_leakance and "K_D" in means:
        fields["K_D"] = means["K_D"]
    return fields
