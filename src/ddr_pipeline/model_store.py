"""Sequential routing over long periods in time chunks that carry the model state.

Used by the evaluation and routing pipelines (and the untrained-parameter baseline). A period is
routed in chunks of ``chunk_days`` days; between chunks the hourly routing state (discharge of
every reach at the end of the chunk) and the LSTM state ``(h, c)`` are carried over, so the
result does not depend on the chunk size (up to float rounding) while the hourly working set
stays bounded by one chunk. Only the daily means (``(days, outputs)`` float32) of the whole
period are kept.

Time conventions (routing-physics.md §2): daily inputs are repeated to ``steps_per_day`` steps;
the daily output of day ``d`` is the mean of the end-of-step states of its steps. The first chunk
starts from the hot start (accumulated lateral inflow) unless an initial state is given.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from ddr_pipeline.config import ParamsConfig, TrainingConfig
from ddr_pipeline.data.batching import ModelInputs, reach_flow_scale
from ddr_pipeline.models import LSTMState, RoutingModel, denormalize, routing_parameters
from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import daily_mean, gather_gauges, muskingum_cunge, repeat_daily
from ddr_pipeline.training.checkpoints import (
    CheckpointError,
    LoadedCheckpoint,
    latest_checkpoint,
    load_checkpoint,
)
from ddr_pipeline.training.forward import DT_SECONDS, FeatureIndex

logger = logging.getLogger(__name__)

HOURS_PER_DAY = 24


@dataclass(frozen=True)
class RoutingDomain:
    """Reaches routed together and the outputs read from them.

    ``reach_index``: sorted global indices (into :class:`ModelInputs`) of the routed reaches;
    ``network``: the sub-network over them; ``outputs``: per output, the local reach indices whose
    discharges are summed (a gauge), or ``None`` to output every routed reach;
    ``inflow_scale``: ``(N,)`` float32 factors of the daily lateral inflow per routed reach
    (gauge ``flow_scale``), or ``None`` for none.
    """

    reach_index: np.ndarray
    network: RiverNetwork
    outputs: tuple[np.ndarray, ...] | None
    inflow_scale: np.ndarray | None = None

    @property
    def n_outputs(self) -> int:
        """Number of output series (gauges, or routed reaches)."""
        return self.network.n_reaches if self.outputs is None else len(self.outputs)


def _domain(inputs: ModelInputs, outlets: np.ndarray) -> tuple[np.ndarray, RiverNetwork]:
    closure = np.sort(np.asarray(inputs.network.upstream_closure(outlets), dtype=np.int64))
    network, index_map = inputs.network.subnetwork(closure)
    if not np.array_equal(index_map, closure):
        raise RuntimeError("sub-network order differs from the requested reach order")
    return closure, network


def gauge_domain(
    inputs: ModelInputs,
    gauge_reach_index: Sequence[np.ndarray],
    flow_scale: np.ndarray | None = None,
) -> RoutingDomain:
    """Domain over the union of the gauges' upstream closures; one output per gauge.

    ``flow_scale`` (``(G,)``, e.g. :attr:`GaugeSet.flow_scale`) scales the lateral inflow of
    each gauge's reaches exactly as in training batches (:func:`reach_flow_scale`).
    """
    if not gauge_reach_index:
        raise ValueError("gauge_domain needs at least one gauge")
    outlets = np.unique(np.concatenate([np.asarray(g, dtype=np.int64) for g in gauge_reach_index]))
    closure, network = _domain(inputs, outlets)
    local_of = np.full(inputs.network.n_reaches, -1, dtype=np.int64)
    local_of[closure] = np.arange(closure.size)
    outputs = tuple(local_of[np.asarray(g, dtype=np.int64)] for g in gauge_reach_index)
    scale = None if flow_scale is None else reach_flow_scale(closure.size, outputs, flow_scale)
    return RoutingDomain(closure, network, outputs, scale)


def reach_domain(inputs: ModelInputs, target_ids: Sequence[int] | None = None) -> RoutingDomain:
    """All reaches (``target_ids`` None/empty) or the upstream closure of the target reach ids.

    Every routed reach is an output.
    """
    if not target_ids:
        everything = np.arange(inputs.network.n_reaches, dtype=np.int64)
        return RoutingDomain(everything, inputs.network, None)
    outlets = inputs.network.index_of(np.asarray(list(target_ids), dtype=np.int64))
    closure, network = _domain(inputs, np.asarray(outlets, dtype=np.int64))
    return RoutingDomain(closure, network, None)


@dataclass(frozen=True)
class ChunkInputs:
    """Network inputs of one chunk (local reach order of the domain)."""

    forcings: torch.Tensor  # (D, N, F) z-scored
    attributes: torch.Tensor  # (N, A) z-scored
    attributes_raw: torch.Tensor  # (N, A)
    observed_geometry: dict[str, torch.Tensor]  # (N,) NaN = not observed


class ParameterSource(Protocol):
    """Produces the physical routing parameters of a chunk and the next network state."""

    leakance: bool
    routing_options: dict[str, str]  # Cunge options (``RoutingOptions.engine_kwargs``)

    def __call__(
        self, chunk: ChunkInputs, state: LSTMState | None
    ) -> tuple[dict[str, torch.Tensor], LSTMState | None]:
        """Return ``({name: (N,) static or (D, N) daily}, new_state)``."""
        ...


class TrainedParameters:
    """Parameters from a trained :class:`RoutingModel` (KAN + optional LSTM), in eval mode.

    Network inputs are selected by name exactly as in training
    (:class:`ddr_pipeline.training.forward.FeatureIndex`); the LSTM state is carried between
    chunks.
    """

    def __init__(
        self,
        model: RoutingModel,
        config: TrainingConfig,
        attribute_names: Sequence[str],
        forcing_names: Sequence[str],
    ) -> None:
        self.model = model.eval()
        self.leakance = config.params.use_leakance
        self.routing_options = config.routing.engine_kwargs()
        self.features = FeatureIndex.from_names(config, attribute_names, forcing_names)

    def __call__(
        self, chunk: ChunkInputs, state: LSTMState | None
    ) -> tuple[dict[str, torch.Tensor], LSTMState | None]:
        """Run the networks on the chunk and map their outputs to physical parameters."""
        f = self.features
        if self.model.lstm is None or f.lstm_forcings is None or f.lstm_attributes is None:
            outputs = self.model(chunk.attributes[:, f.kan])
        else:
            outputs = self.model(
                chunk.attributes[:, f.kan],
                chunk.forcings[:, :, f.lstm_forcings],
                chunk.attributes[:, f.lstm_attributes],
                state,
            )
        ptf = {name: chunk.attributes_raw[:, j] for name, j in f.ptf.items()}
        physical = self.model.routing_parameters(
            outputs,
            chunk.attributes.shape[0],
            ptf_inputs=ptf or None,
            observed=chunk.observed_geometry or None,
        )
        return physical, outputs.state


class ConstantParameters:
    """Untrained baseline: every learned parameter at a configured value or its mid-range.

    ``values`` maps parameter name -> physical value; learned parameters without a value take
    the middle of their range (the geometric middle for log-space ranges), i.e. the value a
    freshly initialised network (sigmoid output 0.5) predicts.
    """

    def __init__(
        self,
        config: TrainingConfig,
        values: Mapping[str, float] | None = None,
        attribute_names: Sequence[str] | None = None,
    ) -> None:
        self.params: ParamsConfig = config.params
        self.leakance = config.params.use_leakance
        self.routing_options = config.routing.engine_kwargs()
        ptf_names = [n for n in (config.params.ptf_sand_var, config.params.ptf_clay_var) if n]
        if ptf_names and attribute_names is None:
            raise ValueError(
                f"the Cosby PTF needs the raw attributes {ptf_names}: pass attribute_names"
            )
        names = list(attribute_names or [])
        missing = [n for n in ptf_names if n not in names]
        if missing:
            raise KeyError(f"PTF attributes {missing} are not among the attributes {names}")
        self.ptf: dict[str, int] = {n: names.index(n) for n in ptf_names}
        values = dict(values or {})
        unknown = sorted(set(values) - set(config.params.parameter_ranges))
        if unknown:
            raise KeyError(f"baseline parameter values for unknown parameters {unknown}")
        self.values: dict[str, float] = {}
        for name in config.learned_parameters:
            low, high = config.params.parameter_ranges[name]
            mid = float(denormalize(torch.tensor(0.5), low, high, self.params.is_log_space(name)))
            self.values[name] = float(values.get(name, mid))
        self.values.update({k: float(v) for k, v in values.items() if k not in self.values})

    def _normalized(self, name: str, n_reaches: int) -> torch.Tensor:
        low, high = self.params.parameter_ranges[name]
        value = self.values[name]
        if self.params.is_log_space(name):
            s = (np.log(value) - np.log(low)) / (np.log(high) - np.log(low))
        else:
            s = (value - low) / (high - low)
        return torch.full((n_reaches,), float(s), dtype=torch.float32)

    def __call__(
        self, chunk: ChunkInputs, state: LSTMState | None
    ) -> tuple[dict[str, torch.Tensor], LSTMState | None]:
        """The same constant parameters for every chunk (no network state)."""
        n = chunk.attributes.shape[0]
        static = {name: self._normalized(name, n) for name in self.values}
        ptf = {name: chunk.attributes_raw[:, j] for name, j in self.ptf.items()}
        physical = routing_parameters(
            static,
            {},
            self.params,
            n,
            ptf_inputs=ptf or None,
            observed=chunk.observed_geometry or None,
        )
        return physical, None


def _to_steps(params: Mapping[str, torch.Tensor], n_days: int, steps: int) -> dict:
    """Repeat daily ``(D, N)`` parameters to ``(D*steps, N)``; static ``(N,)`` stay as they are."""
    out = {}
    for name, values in params.items():
        out[name] = (
            repeat_daily(values, steps)
            if values.ndim == 2 and values.shape[0] == n_days
            else values
        )
    return out


@dataclass(frozen=True)
class RouteSettings:
    """Numerical settings of a sequential routing run."""

    chunk_days: int = 365
    dt: float = DT_SECONDS
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.chunk_days < 1:
            raise ValueError(f"chunk_days must be >= 1, got {self.chunk_days}")
        if (86400.0 / self.dt) != int(86400.0 / self.dt):
            raise ValueError(f"dt={self.dt} s does not divide one day")

    @property
    def steps_per_day(self) -> int:
        """Routing steps per day."""
        return int(86400.0 / self.dt)


def _chunk_inputs(
    inputs: ModelInputs, domain: RoutingDomain, days: slice, device: torch.device
) -> tuple[ChunkInputs, torch.Tensor]:
    idx = domain.reach_index
    chunk = ChunkInputs(
        forcings=torch.from_numpy(inputs.forcings[days][:, idx]).to(device),
        attributes=torch.from_numpy(inputs.attributes[idx]).to(device),
        attributes_raw=torch.from_numpy(inputs.attributes_raw[idx]).to(device),
        observed_geometry={
            k: torch.from_numpy(v[idx]).to(device) for k, v in inputs.observed_geometry.items()
        },
    )
    inflow = torch.from_numpy(inputs.lateral_inflow[days][:, idx]).to(device)
    if domain.inflow_scale is not None:
        inflow = inflow * torch.from_numpy(domain.inflow_scale).to(device)
    return chunk, inflow


def _outputs(daily: torch.Tensor, domain: RoutingDomain) -> np.ndarray:
    if domain.outputs is None:
        return daily.cpu().numpy()
    return gather_gauges(daily, list(domain.outputs)).cpu().numpy()


@dataclass
class RouteResult:
    """Daily means ``(days, outputs)`` and per-reach parameter means over the routed days."""

    daily: np.ndarray
    parameter_means: dict[str, np.ndarray]


def _accumulate(sums: dict[str, np.ndarray], params: Mapping[str, torch.Tensor], days: int) -> None:
    """Add each parameter's day-weighted per-reach values (static ones count every day)."""
    for name, values in params.items():
        per_day = values.sum(dim=0) if values.ndim == 2 else values * days
        sums[name] = sums.get(name, 0.0) + per_day.detach().double().cpu().numpy()


def route_period(
    inputs: ModelInputs,
    domain: RoutingDomain,
    source: ParameterSource,
    start: int,
    stop: int,
    *,
    settings: RouteSettings | None = None,
) -> RouteResult:
    """Route day positions ``[start, stop)`` of ``inputs`` in chunks carrying the state.

    Returns the float32 daily mean discharge ``(stop - start, domain.n_outputs)`` (m³/s) and the
    mean physical parameters per routed reach (``(N,)`` each; daily ones averaged over the days).
    """
    settings = settings or RouteSettings()
    if not 0 <= start < stop <= len(inputs.dates):
        raise ValueError(f"day range {start}..{stop} outside 0..{len(inputs.dates)}")
    device = torch.device(settings.device)
    channel = {
        key: torch.from_numpy(values[domain.reach_index]).to(device)
        for key, values in inputs.channel.items()
    }
    daily = np.empty((stop - start, domain.n_outputs), dtype=np.float32)
    sums: dict[str, np.ndarray] = {}
    q_state: torch.Tensor | None = None
    lstm_state: LSTMState | None = None
    steps = settings.steps_per_day
    with torch.no_grad():
        for first in range(start, stop, settings.chunk_days):
            last = min(first + settings.chunk_days, stop)
            chunk, inflow = _chunk_inputs(inputs, domain, slice(first, last), device)
            params, lstm_state = source(chunk, lstm_state)
            hourly = muskingum_cunge(
                domain.network,
                repeat_daily(inflow, steps),
                channel=channel,
                params=_to_steps(params, last - first, steps),
                dt=settings.dt,
                initial_state=q_state,
                leakance=source.leakance,
                **source.routing_options,
            )
            q_state = hourly[-1]
            daily[first - start : last - start] = _outputs(daily_mean(hourly, steps), domain)
            _accumulate(sums, params, last - first)
            logger.debug("routed days %d..%d", first, last)
    means = {name: (total / (stop - start)).astype(np.float32) for name, total in sums.items()}
    return RouteResult(daily=daily, parameter_means=means)


def parameter_means(
    inputs: ModelInputs,
    domain: RoutingDomain,
    source: ParameterSource,
    start: int,
    stop: int,
    *,
    chunk_days: int = 365,
) -> dict[str, np.ndarray]:
    """Mean physical parameters per reach over days ``[start, stop)`` (networks only, no routing).

    The LSTM state is carried between chunks exactly as in :func:`route_period`.
    """
    sums: dict[str, np.ndarray] = {}
    state: LSTMState | None = None
    with torch.no_grad():
        for first in range(start, stop, chunk_days):
            last = min(first + chunk_days, stop)
            chunk, _ = _chunk_inputs(inputs, domain, slice(first, last), torch.device("cpu"))
            params, state = source(chunk, state)
            _accumulate(sums, params, last - first)
    return {name: (total / (stop - start)).astype(np.float32) for name, total in sums.items()}


def spinup_start(dates: pd.DatetimeIndex, start: str, warmup_days: int) -> tuple[int, int]:
    """Day positions ``(route_from, period_start)``: routing begins ``warmup_days`` earlier.

    When the inputs do not reach back far enough, routing starts on their first day and a
    warning names the shortfall (the caller excludes those days from scoring).
    """
    period_start = int(dates.searchsorted(pd.Timestamp(start)))
    route_from = max(period_start - int(warmup_days), 0)
    if period_start - route_from < warmup_days:
        logger.warning(
            "only %d of %d warm-up days before %s are in the inputs",
            period_start - route_from,
            warmup_days,
            start,
        )
    return route_from, period_start


def resolve_checkpoint(
    checkpoint: str | None, run_name: str | None, models_dir: str | Path
) -> Path:
    """The checkpoint file to load: ``checkpoint`` if given, else the latest one of ``run_name``.

    Raises ``FileNotFoundError`` naming the path or run folder searched.
    """
    if checkpoint:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        return path
    if not run_name:
        raise ValueError("give a checkpoint path, a training run name or an MLflow model URI")
    latest = latest_checkpoint(models_dir, run_name)
    if latest is None:
        folder = Path(models_dir) / run_name / "saved_models"
        raise FileNotFoundError(
            f"no checkpoint of run {run_name!r} in {folder} (train it first, or set the "
            "checkpoint path / MLflow model URI)"
        )
    return latest


#: Artifact folder of a training run holding its final checkpoint (training pipeline).
CHECKPOINT_ARTIFACT = "model_checkpoint"


def load_model(
    checkpoint: str | None = None,
    run_name: str | None = None,
    mlflow_model_uri: str | None = None,
    models_dir: str | Path = "data/06_models",
) -> LoadedCheckpoint:
    """Load a trained model from a checkpoint path, a run's latest checkpoint or an MLflow URI.

    Priority: ``checkpoint`` > ``mlflow_model_uri`` > latest checkpoint of ``run_name``. For an
    MLflow URI (``runs:/<id>/model``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``)
    the weights come from the MLflow PyTorch model and the configuration / normalisation
    statistics from the checkpoint its training run logged as ``model_checkpoint/`` (read from
    the tracking store set by ``MLFLOW_TRACKING_URI`` / ``mlflow.set_tracking_uri``). Only when
    that run has no such artifact is the latest local checkpoint of ``run_name`` used instead
    (with a warning); its architecture (state-dict keys) must match. Raises
    :class:`CheckpointError` naming the run and the folder searched when neither exists.
    """
    if checkpoint or not mlflow_model_uri:
        path = resolve_checkpoint(checkpoint, run_name, models_dir)
        logger.info("loading checkpoint %s", path)
        return load_checkpoint(path)
    import mlflow.pytorch

    base, origin = _mlflow_context(mlflow_model_uri, run_name, models_dir)
    model = mlflow.pytorch.load_model(mlflow_model_uri, map_location="cpu")
    state = _matching_state(model.state_dict(), base, mlflow_model_uri, origin)
    logger.info("loaded weights from MLflow model %s (context: %s)", mlflow_model_uri, origin)
    return dataclasses.replace(base, payload={**base.payload, "model_state_dict": state})


def _matching_state(
    state: Mapping[str, torch.Tensor], base: LoadedCheckpoint, uri: str, origin: str
) -> dict[str, torch.Tensor]:
    """Load ``state`` into ``base.model`` (eval mode); fail naming both sources on a mismatch."""
    ours, theirs = set(base.model.state_dict()), set(state)
    if ours != theirs:
        raise CheckpointError(
            f"MLflow model {uri} does not match the architecture of {origin}: keys only in "
            f"MLflow {sorted(theirs - ours)[:10]}, only in checkpoint {sorted(ours - theirs)[:10]}"
        )
    try:
        base.model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"MLflow model {uri} does not fit {origin}: {error}") from error
    base.model.eval()
    return dict(base.model.state_dict())


def _mlflow_context(
    uri: str, run_name: str | None, models_dir: str | Path
) -> tuple[LoadedCheckpoint, str]:
    """The checkpoint giving an MLflow model's configuration and statistics, and its origin."""
    from mlflow.models import get_model_info

    run_id = get_model_info(uri).run_id
    if run_id:
        ckpt = _run_checkpoint(run_id)
        if ckpt is not None:
            return ckpt, f"artifact {CHECKPOINT_ARTIFACT}/ of MLflow run {run_id}"
    local = latest_checkpoint(models_dir, run_name) if run_name else None
    if local is not None:
        logger.warning(
            "MLflow model %s: its run %s has no %s/ artifact; using the configuration and "
            "normalisation statistics of the local checkpoint %s",
            uri,
            run_id,
            CHECKPOINT_ARTIFACT,
            local,
        )
        return load_checkpoint(local), f"local checkpoint {local}"
    folder = Path(models_dir) / (run_name or "<run_name>") / "saved_models"
    raise CheckpointError(
        f"MLflow model {uri} holds only the network weights; its configuration and "
        f"normalisation statistics come from the {CHECKPOINT_ARTIFACT}/ artifact of its training "
        f"run ({run_id or 'no source run recorded'}), which has none, or from a local checkpoint "
        f"of run {run_name!r} in {folder}, which does not exist"
    )


def _run_checkpoint(run_id: str) -> LoadedCheckpoint | None:
    """The ``.pt`` checkpoint logged under ``model_checkpoint/`` by run ``run_id``, or None."""
    import mlflow
    from mlflow.artifacts import download_artifacts

    listed = mlflow.MlflowClient().list_artifacts(run_id, CHECKPOINT_ARTIFACT)
    files = sorted(a.path for a in listed if not a.is_dir and a.path.endswith(".pt"))
    if not files:
        return None
    if len(files) > 1:
        raise CheckpointError(
            f"MLflow run {run_id} has {len(files)} checkpoints under {CHECKPOINT_ARTIFACT}/ "
            f"({files}); expected one"
        )
    with tempfile.TemporaryDirectory(prefix="ddr_mlflow_ckpt_") as folder:
        path = download_artifacts(run_id=run_id, artifact_path=files[0], dst_path=folder)
        logger.info("loading checkpoint %s of MLflow run %s", files[0], run_id)
        return load_checkpoint(path)
