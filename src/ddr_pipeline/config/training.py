"""Typed training configuration (pydantic v2), validated from the ``training`` parameters dict.

Kedro passes ``params:training`` as a plain dict; :func:`load_training_config` validates it and
raises :class:`ConfigError` whose lines name the offending key path, e.g.
``training.kan.grid: Input should be greater than 0``. Every model forbids unknown keys.
"""

from __future__ import annotations

import datetime
import difflib
import logging
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from ddr_pipeline.parameter_registry import (
    DDR_DERIVED_PARAMETERS,
    DEFAULTABLE_PARAMETERS,
    FLOORS,
    LAKE_PARAMETERS,
    LEAKANCE_PARAMETERS,
    LEARNABLE_PARAMETERS,
    OBSERVABLE_PARAMETERS,
    default_log_space,
    default_ranges,
    default_values,
    outside_domain,
    routed_parameters,
)

logger = logging.getLogger(__name__)

#: Devices a configuration may name.
DEVICE_PATTERN = r"^(auto|cpu|cuda|cuda:\d+)$"
_DEVICE_PATTERN = re.compile(DEVICE_PATTERN)
#: Geodataset names: a folder under data/01_raw and a Kedro environment (no code list).
GEODATASET_PATTERN = r"^[a-z][a-z0-9_]*$"
#: A run name is one folder name: starts with a letter, digit or '_' (so never '.', '..', a hidden
#: folder or an option-like '-x'), then letters, digits, '.', '_', '-' (matched whole: no newline).
_RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
#: Longest run name: it is part of checkpoint file names (``ddr_<run>_epoch_<e>_mb_<i>.pt`` and
#: their temporaries), which must stay under the file systems' 255-byte limit.
MAX_RUN_NAME_LENGTH = 100


def check_run_name(name: str) -> str:
    """Return ``name`` if it is a safe run name (one folder under ``data/``), else raise.

    Raises:
        ValueError: naming the run name (path separators, ``.``, ``..``, leading ``.``/``-``,
            a trailing newline, more than :data:`MAX_RUN_NAME_LENGTH` characters).
    """
    if not isinstance(name, str) or not _RUN_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"run_name {name!r} is not a plain folder name: use letters, digits, '.', '_', '-', "
            "starting with a letter, digit or '_' (no '/', '.', '..', leading '-' or newline)"
        )
    if len(name) > MAX_RUN_NAME_LENGTH:
        raise ValueError(
            f"run_name {name[:20]!r}... has {len(name)} characters, more than "
            f"{MAX_RUN_NAME_LENGTH} (it is part of checkpoint file names)"
        )
    return name


def as_tuple(value: Any) -> Any:
    """A YAML/JSON list as a tuple (strict models take tuples only); anything else unchanged."""
    return tuple(value) if isinstance(value, list) else value


def _int_keys(table: Any) -> Any:
    """Digit-string keys as ints: a table of int keys after a JSON round trip (checkpoints)."""
    if not isinstance(table, Mapping):
        return table
    return {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in table.items()}


_VALUE_ERROR_PREFIX = "Value error, "
_RELATIVE_PATH = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*): (.*)$", re.DOTALL)

PositiveInt = Annotated[int, Field(gt=0)]
NonEmptyNames = Annotated[list[str], Field(min_length=1)]
#: ``[lo, hi]`` from YAML/JSON lists; the numbers stay strict.
FloatPair = Annotated[tuple[float, float], BeforeValidator(as_tuple)]
#: ``[start, end]`` strings (YAML/JSON have no dates: ISO strings are parsed).
StrPair = Annotated[tuple[str, str], BeforeValidator(as_tuple)]
#: A date or datetime given as an ISO string too (YAML, ``--params`` and JSON carry strings).
LaxDate = Annotated[datetime.date, Strict(False)]
LaxDateTime = Annotated[datetime.datetime, Strict(False)]


class ConfigError(ValueError):
    """Invalid training configuration; the message lists one ``key.path: problem`` per line."""


class _Strict(BaseModel):
    """Base model: unknown keys are errors, defaults are validated too, numbers are finite and
    types are strict (no ``seed: true`` -> 1, ``shuffle: "no"`` -> False, ``epochs: "3"`` -> 3)."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, allow_inf_nan=False, strict=True
    )


#: Public name of the strict base model (other configuration modules build on it).
StrictModel = _Strict


def _check_unique(names: list[str]) -> list[str]:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate names {duplicates}")
    return names


def _check_known(names: list[str], known: tuple[str, ...]) -> list[str]:
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown parameter names {unknown}; known: {list(known)}")
    return names


class ExperimentConfig(_Strict):
    """Training loop settings."""

    epochs: PositiveInt = Field(1, description="Number of passes over the training gauges.")
    batch_size: PositiveInt = Field(8, description="Gauges per mini-batch.")
    rho: PositiveInt | None = Field(
        365, description="Training window length in days (null = the whole training period)."
    )
    warmup: int = Field(
        3, ge=0, description="Days at the start of every window excluded from loss and metrics."
    )
    shuffle: bool = Field(True, description="Shuffle gauges (and windows) every epoch.")
    checkpoint: str | None = Field(
        None, description="Checkpoint file to resume from (null = start from scratch)."
    )
    checkpoint_every: PositiveInt = Field(
        10, description="Write a checkpoint every this many mini-batches (and at epoch end)."
    )
    learning_rate: Annotated[
        dict[int, Annotated[float, Field(gt=0)]], BeforeValidator(_int_keys)
    ] = Field(
        default_factory=lambda: {1: 0.005, 3: 0.001},
        description=(
            "Learning-rate table {epoch: lr}; an epoch uses the entry of the largest key <= epoch."
        ),
    )
    grad_clip_norm: Annotated[float, Field(gt=0)] | None = Field(
        1.0, description="Clip the global gradient norm to this value (null = no clipping)."
    )
    seed: int = Field(0, ge=0, description="Seed of torch, numpy and python RNGs and the sampler.")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N (auto = cuda if present).")
    max_consecutive_nonfinite: PositiveInt = Field(
        5, description="Abort after this many consecutive steps with a NaN/Inf loss or gradient."
    )
    max_nonfinite_fraction: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description=(
            "Fail the run (no trained model saved) when more than this share of its steps was "
            "undone as non-finite; a run without a successful step always fails."
        ),
    )
    validation_every: PositiveInt | None = Field(
        None, description="Evaluate validation gauges every this many mini-batches (null = never)."
    )
    optimizer: Literal["adam", "adamw"] = Field(
        "adam",
        description=(
            "Optimiser over both networks: adam, or adamw (Adam with decoupled weight decay, "
            "which shrinks every weight by lr x weight_decay per step)."
        ),
    )
    weight_decay: float = Field(
        0.0,
        ge=0.0,
        description=(
            "Decoupled weight decay of adamw (0 = none). Non-zero needs optimizer adamw: Adam's "
            "L2 penalty is rescaled by its adaptive step and does not shrink weights uniformly."
        ),
    )
    threads: PositiveInt | None = Field(
        1,
        description=(
            "CPU threads of torch and of the routing kernels (which follow torch's count) in a "
            "single-process run (distributed ranks use distributed.threads_per_rank). 1: best on "
            "shared or 2-core machines, where torch's LSTM on 2 threads was 3x slower under load "
            "(the routing is not: docs/performance.md); null: leave torch's default (all cores)."
        ),
    )
    memory_budget_gb: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description=(
            "Host memory (GiB) one training step may use: the step picks the routing checkpoint "
            "interval and the LSTM chunking to fit it and stops a mini-batch that cannot fit "
            "before allocating, naming its size and estimate. null: no limit, no recomputation."
        ),
    )

    @field_validator("learning_rate")
    @classmethod
    def _lr_table(cls, table: dict[int, float]) -> dict[int, float]:
        if not table:
            raise ValueError("learning-rate table must not be empty")
        bad = sorted(key for key in table if key < 1)
        if bad:
            raise ValueError(f"epoch keys must be >= 1, got {bad}")
        if 1 not in table:
            raise ValueError(f"must define the learning rate of epoch 1, keys are {sorted(table)}")
        return dict(sorted(table.items()))

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not _DEVICE_PATTERN.match(device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
        return device

    @model_validator(mode="after")
    def _decay_needs_adamw(self) -> ExperimentConfig:
        if self.weight_decay > 0 and self.optimizer != "adamw":
            raise ValueError(
                f"weight_decay {self.weight_decay} needs optimizer adamw, got {self.optimizer!r}"
            )
        return self

    @model_validator(mode="after")
    def _warmup_inside_window(self) -> ExperimentConfig:
        if self.rho is not None and self.warmup >= self.rho:
            raise ValueError(
                f"warmup ({self.warmup} days) must be shorter than rho ({self.rho} days)"
            )
        return self

    def learning_rate_for_epoch(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (1-based): the entry of the largest table key <= epoch."""
        if epoch < 1:
            raise ValueError(f"epoch must be >= 1, got {epoch}")
        return self.learning_rate[max(key for key in self.learning_rate if key <= epoch)]


class KANConfig(_Strict):
    """KAN for static (per-reach) parameters."""

    hidden_size: PositiveInt = Field(21, description="Hidden width H (DDR recommends 2n+1).")
    num_hidden_layers: PositiveInt = Field(2, description="Number of pykan KAN([H, H]) layers.")
    input_var_names: NonEmptyNames = Field(
        ..., description="Static attributes (z-scored) fed to the KAN, by name."
    )
    learnable_parameters: NonEmptyNames = Field(
        default_factory=lambda: ["q_spatial", "top_width", "side_slope", "K_D_delta"],
        description="Static parameters predicted by the KAN.",
    )
    grid: PositiveInt = Field(5, description="Number of B-spline grid intervals.")
    k: PositiveInt = Field(3, description="B-spline order.")

    _unique_inputs = field_validator("input_var_names")(_check_unique)

    @field_validator("learnable_parameters")
    @classmethod
    def _learnable(cls, names: list[str]) -> list[str]:
        return _check_known(_check_unique(names), LEARNABLE_PARAMETERS)


class LSTMConfig(_Strict):
    """LSTM for daily time-varying parameters."""

    hidden_size: PositiveInt = Field(64, description="LSTM hidden size H.")
    num_layers: PositiveInt = Field(1, description="Stacked LSTM layers.")
    dropout: float = Field(
        0.5, ge=0.0, lt=1.0, description="Dropout on the LSTM outputs before the output layer."
    )
    forcing_var_names: NonEmptyNames = Field(
        default_factory=lambda: ["P", "PET", "Temp"],
        description="Daily forcings (z-scored) fed to the LSTM, by name.",
    )
    input_var_names: list[str] = Field(
        ..., description="Static attributes (z-scored) repeated over time and fed to the LSTM."
    )
    learnable_parameters: NonEmptyNames = Field(
        default_factory=lambda: ["n", "d_gw"],
        description="Daily parameters predicted by the LSTM.",
    )
    sequence_groups: PositiveInt | None = Field(
        None,
        description=(
            "Run the LSTM on at most this many sequences per batch: reaches are grouped by "
            "seeded k-means on their static LSTM attributes, each group is fed its mean "
            "forcings and attributes and its reaches share its daily parameters. null: one "
            "sequence per reach. See docs/training.md."
        ),
    )

    _unique_forcings = field_validator("forcing_var_names")(_check_unique)
    _unique_inputs = field_validator("input_var_names")(_check_unique)

    @field_validator("learnable_parameters")
    @classmethod
    def _learnable(cls, names: list[str]) -> list[str]:
        return _check_known(_check_unique(names), LEARNABLE_PARAMETERS)

    @model_validator(mode="after")
    def _groups_need_attributes(self) -> LSTMConfig:
        if self.sequence_groups is not None and not self.input_var_names:
            raise ValueError(
                f"cuda_lstm.sequence_groups={self.sequence_groups} groups reaches by their "
                "static attributes, but cuda_lstm.input_var_names is empty"
            )
        return self


class AttributeMinimums(_Strict):
    """Lower bounds (floors) used by the routing step."""

    discharge: float = Field(FLOORS["discharge"], gt=0, description="Q_min, m3/s.")
    slope: float = Field(FLOORS["slope"], gt=0, description="S_min, m/m.")
    velocity: float = Field(FLOORS["velocity"], gt=0, description="v_min, m/s.")
    depth: float = Field(FLOORS["depth"], gt=0, description="d_min, m.")
    bottom_width: float = Field(FLOORS["bottom_width"], gt=0, description="B_min, m.")


# Cosby et al. (1984) log10 Ks (m/s) of a loam (40 % sand, 20 % clay).
_LOAM_LOG10_KS = round(-0.60 + 0.0126 * 40 - 0.0064 * 20 + math.log10(7.056e-6), 3)


class ParamsConfig(_Strict):
    """Physical parameter ranges, defaults and leakance settings."""

    parameter_ranges: dict[str, FloatPair] = Field(
        default_factory=default_ranges,
        description="Physical range [lo, hi] of each parameter; network outputs map into it.",
    )
    log_space_parameters: list[str] = Field(
        default_factory=default_log_space,
        description="Parameters denormalised in log space (range must be positive).",
    )
    defaults: dict[str, float] = Field(
        default_factory=default_values,
        description="Constant values of parameters that are not learned (x = Muskingum X).",
    )
    attribute_minimums: AttributeMinimums = Field(
        default_factory=AttributeMinimums, description="Floors used by the routing step."
    )
    use_leakance: bool = Field(False, description="Enable riverbed exchange (K_D, d_gw).")
    ptf_sand_var: str | None = Field(
        None, description="Raw sand % attribute for the Cosby PTF (null = use prior_log10_ks)."
    )
    ptf_clay_var: str | None = Field(
        None, description="Raw clay % attribute for the Cosby PTF (null = use prior_log10_ks)."
    )
    prior_log10_ks: float = Field(
        _LOAM_LOG10_KS,
        description="log10 Ks (m/s) when no sand/clay attributes are configured (Cosby, loam).",
    )
    observed_geometry: list[str] = Field(
        default_factory=list,
        description=(
            "Parameters replaced by observed channel data where present "
            "(top_width, side_slope, n from mann_n)."
        ),
    )

    @field_validator("parameter_ranges")
    @classmethod
    def _ranges(cls, ranges: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        _check_known(list(ranges), LEARNABLE_PARAMETERS)
        for name, (lo, hi) in ranges.items():
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"{name}: range bounds must be finite, got [{lo}, {hi}]")
            if not lo < hi:
                raise ValueError(f"{name}: range needs lo < hi, got [{lo}, {hi}]")
            problem = outside_domain(name, lo, hi)
            if problem:
                raise ValueError(problem)
        return ranges

    @field_validator("log_space_parameters")
    @classmethod
    def _log_names(cls, names: list[str]) -> list[str]:
        return _check_known(_check_unique(names), LEARNABLE_PARAMETERS)

    @field_validator("defaults")
    @classmethod
    def _defaults(cls, defaults: dict[str, float]) -> dict[str, float]:
        _check_known(list(defaults), DEFAULTABLE_PARAMETERS)
        bad = [name for name, value in defaults.items() if not math.isfinite(value)]
        if bad:
            raise ValueError(f"defaults must be finite: {bad}")
        return defaults

    @field_validator("observed_geometry")
    @classmethod
    def _observed(cls, names: list[str]) -> list[str]:
        return _check_known(_check_unique(names), tuple(OBSERVABLE_PARAMETERS))

    @model_validator(mode="after")
    def _consistent(self) -> ParamsConfig:
        for name in self.log_space_parameters:
            bounds = self.parameter_ranges.get(name)
            if bounds is not None and bounds[0] <= 0:
                raise ValueError(
                    f"parameter_ranges.{name}: log-space range must be positive, got {list(bounds)}"
                )
        if (self.ptf_sand_var is None) != (self.ptf_clay_var is None):
            raise ValueError("ptf_sand_var and ptf_clay_var must be given together (or neither)")
        return self

    def is_log_space(self, name: str) -> bool:
        """Whether ``name`` is denormalised in log space."""
        return name in self.log_space_parameters


class LakeOptions(_Strict):
    """Level-pool lakes and reservoirs (docs/reservoirs.md)."""

    enabled: bool = Field(
        False,
        description=(
            "Route the geodataset's lakes (lakes.parquet) as NWM level pools at their reaches; "
            "false: every lake reach is routed as a channel (the results without lakes)."
        ),
    )
    scheme: Literal["conservative", "nwm"] = Field(
        "conservative",
        description=(
            "conservative (exact RK3 fractions, outflow from the storage change: mass closes "
            "each step) or nwm (NWM's LEVELPOOL_PHYSICS literally, for parity with t-route)."
        ),
    )
    substeps: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "RK3 sub-steps per routing step (conservative: the minimum; stiff lakes take more)."
        ),
    )


class RoutingOptions(_Strict):
    """Cunge physics options of the Muskingum–Cunge step (docs/routing.md, *Cunge options*)."""

    x: Literal["data", "cunge"] = Field(
        "data",
        description=(
            "Muskingum X: data (channel x, params.defaults.x where missing) or cunge (from the "
            "flow each step, numerical diffusion matched to the physical one)."
        ),
    )
    celerity: Literal["wide_rectangle", "exact"] = Field(
        "wide_rectangle",
        description="Kinematic celerity: wide_rectangle (5/3 v) or exact (dQ/dA of the trapezoid).",
    )
    geometry: Literal["learned", "ddr"] = Field(
        "learned",
        description=(
            "Channel top width and side slope: learned (top_width, side_slope parameters) or ddr "
            "(DDR's derivation from the depth each step: W = p d^q, z = clamp(W q/(2d), 0.5, 50); "
            "only n, q_spatial, p_spatial matter; no leakance)."
        ),
    )
    output_shift_hours: int = Field(
        0,
        ge=-23,
        le=23,
        description=(
            "Output-hour offset: day d's value is the mean of the end-of-step states of hours "
            "24d+1+shift .. 24d+24+shift (0 = the day's own 24 states). DDR/ddrs params.tau "
            "(the 2026-08 convention, slice [tau : -(24-tau)]) = shift + 1."
        ),
    )
    lakes: LakeOptions = Field(
        default_factory=LakeOptions, description="Level-pool lakes and reservoirs."
    )

    def engine_kwargs(self) -> dict[str, str]:
        """Keyword arguments of ``ddr_pipeline.routing.muskingum_cunge``."""
        return {"x_mode": self.x, "celerity": self.celerity, "geometry": self.geometry}


class LossConfig(_Strict):
    """Loss on daily means after warm-up."""

    name: Literal["mse", "mae", "nse"] = Field("mse", description="mse | mae | nse (1 - NSE).")
    eps: float = Field(
        1e-3, gt=0, description="nse only: added to each gauge's sum of squared anomalies."
    )


class MonitoringConfig(_Strict):
    """Where training writes, what it validates on and what it sends to MLflow."""

    models_dir: str = Field(
        "data/06_models",
        description="Checkpoints go to <models_dir>/<run_name>/saved_models/.",
    )
    validation_period: Literal["test", "train"] | StrPair = Field(
        "test",
        description=(
            "Period the held-out validation gauges are scored on: the model inputs' test or "
            "train period, or [start, end] dates."
        ),
    )
    validation_warmup_days: int = Field(
        30, ge=0, description="Days routed before the validation period and not scored."
    )
    well_observed_fraction: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Share of valid test days that makes a gauge well observed (test medians).",
    )
    log_checkpoints: bool = Field(
        True, description="Upload every checkpoint to MLflow (the final model always is)."
    )
    progress_bar: bool = Field(
        True, description="Show a progress bar while training (log lines print above it)."
    )
    replace_run: bool = Field(
        False,
        description=(
            "Discard the run folder's earlier training attempt (its checkpoints and final model) "
            "instead of refusing to train under a used run_name; a folder in use by a running "
            "training is never touched."
        ),
    )

    @field_validator("validation_period")
    @classmethod
    def _period(cls, period: str | tuple[str, str]) -> str | tuple[str, str]:
        if isinstance(period, tuple):
            try:
                start, end = (datetime.date.fromisoformat(str(day)) for day in period)
            except ValueError as error:
                raise ValueError(f"dates must be YYYY-MM-DD: {error}") from None
            if start > end:
                raise ValueError(f"start {start} is after end {end}")
        return period


class DistributedConfig(_Strict):
    """Data-parallel training over processes (ranks) with ``torch.distributed`` (docs/distributed.md).

    ``nproc_per_node`` > 1 (or ``nnodes`` > 1) makes the training node launch the ranks with
    torch's elastic launcher (the engine of ``torchrun``); the head node is node 0 and its rank 0
    alone writes checkpoints, reports and MLflow.
    """

    nproc_per_node: PositiveInt = Field(
        1, description="Processes (ranks) on this node: CPU ranks, or one GPU per rank."
    )
    nnodes: PositiveInt = Field(
        1, description="Nodes; the others join with torchrun --node-rank (docs/distributed.md)."
    )
    master_addr: str = Field(
        "127.0.0.1", description="Address of this (head) node that the other nodes reach."
    )
    master_port: Annotated[int, Field(gt=0, lt=65536)] | None = Field(
        None, description="Rendezvous port (null = a free local port; required for nnodes > 1)."
    )
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="auto = nccl when ranks train on CUDA devices, else gloo."
    )
    threads_per_rank: PositiveInt = Field(
        1, description="torch / routing threads of every rank (ranks x threads <= cores)."
    )
    timeout_s: PositiveInt = Field(
        600, description="Seconds a collective waits for the other ranks before failing."
    )

    @model_validator(mode="after")
    def _rendezvous(self) -> DistributedConfig:
        if self.nnodes > 1 and self.master_port is None:
            raise ValueError("master_port is required when nnodes > 1")
        return self

    @property
    def world_size(self) -> int:
        """Total number of ranks."""
        return self.nnodes * self.nproc_per_node


class TrainingConfig(_Strict):
    """The whole ``training`` parameters section."""

    geodataset: str = Field(
        ...,
        pattern=GEODATASET_PATTERN,
        description="Geodataset (data/01_raw/<name>, conf/<name>) the inputs come from.",
    )
    run_name: str | None = Field(
        None, description="Run name (null = ddr-{geodataset}-training); letters, digits, . _ -."
    )
    experiment: ExperimentConfig = Field(
        default_factory=ExperimentConfig, description="Training loop."
    )
    kan: KANConfig = Field(..., description="Static-parameter KAN.")
    cuda_lstm: LSTMConfig | None = Field(
        None, description="Daily-parameter LSTM (null = no time-varying parameters)."
    )
    params: ParamsConfig = Field(default_factory=ParamsConfig, description="Physical parameters.")
    routing: RoutingOptions = Field(
        default_factory=RoutingOptions, description="Cunge physics options of the routing step."
    )
    loss: LossConfig = Field(default_factory=LossConfig, description="Training loss.")
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig, description="Outputs, validation and MLflow logging."
    )
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig, description="Data-parallel ranks (default: one)."
    )

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, name: str | None) -> str | None:
        return name if name is None else check_run_name(name)

    @model_validator(mode="after")
    def _cross_checks(self) -> TrainingConfig:
        if self.run_name is None:
            self.run_name = f"ddr-{self.geodataset}-training"
        lstm_learned = self.cuda_lstm.learnable_parameters if self.cuda_lstm else []
        overlap = sorted(set(self.kan.learnable_parameters) & set(lstm_learned))
        if overlap:
            raise ValueError(
                f"kan.learnable_parameters and cuda_lstm.learnable_parameters overlap: {overlap}"
            )
        self._check_ddr_geometry()
        missing = [n for n in self.learned_parameters if n not in self.params.parameter_ranges]
        if missing:
            raise ValueError(
                f"params.parameter_ranges: no range for learnable parameters {missing}"
            )
        lstm_lake = sorted(set(lstm_learned) & set(LAKE_PARAMETERS))
        if lstm_lake:
            raise ValueError(
                f"cuda_lstm.learnable_parameters: lake parameters {lstm_lake} are static "
                "(learn them with the KAN)"
            )
        lake_learned = sorted(set(self.learned_parameters) & set(LAKE_PARAMETERS))
        if lake_learned and not self.routing.lakes.enabled:
            raise ValueError(
                f"lake parameters {lake_learned} are learned but routing.lakes.enabled is false"
            )
        needed = routed_parameters(self.routing.geometry, self.params.use_leakance)
        unset = [
            n for n in needed if n not in self.learned_parameters and n not in self.params.defaults
        ]
        if unset:
            raise ValueError(
                f"params.defaults: parameters {unset} are neither learned nor given a default"
            )
        return self

    def _check_ddr_geometry(self) -> None:
        """``routing.geometry: ddr`` derives top width and side slope each step: learning them,
        replacing them by channel data or adding leakance (its bank height needs them) would
        have no effect or no meaning, so each is refused by name."""
        if self.routing.geometry != "ddr":
            return
        learned = [n for n in self.learned_parameters if n in DDR_DERIVED_PARAMETERS]
        if learned:
            raise ValueError(
                f"routing.geometry: ddr derives {learned} from p_spatial and the depth each "
                "step: remove them from the learnable_parameters (DDR learns n, q_spatial, "
                "p_spatial)"
            )
        observed = [n for n in self.params.observed_geometry if n in DDR_DERIVED_PARAMETERS]
        if observed:
            raise ValueError(
                f"params.observed_geometry: {observed} cannot replace the geometry that "
                "routing.geometry: ddr derives each step"
            )
        if self.params.use_leakance:
            raise ValueError(
                "params.use_leakance: routing.geometry: ddr has no leakance (its bank height "
                "needs a static top width and side slope)"
            )

    @property
    def learned_parameters(self) -> list[str]:
        """All learned parameter names, KAN first then LSTM."""
        lstm = self.cuda_lstm.learnable_parameters if self.cuda_lstm else []
        return [*self.kan.learnable_parameters, *lstm]

    def to_flat_dict(self) -> dict[str, str | int | float | bool | None]:
        """Flatten to ``{"kan.grid": 5, ...}`` (lists joined by commas) for MLflow logging."""
        return flatten_dict(self.model_dump(mode="json"), join_lists=True)


def flatten_dict(value: Any, prefix: str = "", *, join_lists: bool = False) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept, or joined by commas when
    ``join_lists``."""
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_dict(item, name, join_lists=join_lists))
        return flat
    if join_lists and isinstance(value, list):
        return {prefix: ",".join(str(item) for item in value)}
    return {prefix: value}


def format_validation_error(
    error: ValidationError, root: str = "training", model: type[BaseModel] | None = None
) -> str:
    """One ``root.key.path: message`` line per pydantic error.

    Our own validators may start their message with a key path relative to the failing model
    (``"parameter_ranges.top_width: ..."``); it is appended to the location.
    """
    lines = []
    for item in error.errors():
        parts = [root, *(str(part) for part in item["loc"])]
        message = str(item["msg"])
        if message.startswith(_VALUE_ERROR_PREFIX):
            message = message.removeprefix(_VALUE_ERROR_PREFIX)
            relative = _RELATIVE_PATH.match(message)
            if relative:
                parts.append(relative.group(1))
                message = relative.group(2)
        if item["type"] == "extra_forbidden":
            message += _did_you_mean(model, item["loc"])
        lines.append(f"{'.'.join(parts)}: {message}")
    return "\n".join(lines)


def _did_you_mean(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    """`` (did you mean 'x'?)`` for an unknown key at ``loc`` of ``model``, or ``""``."""
    fields: Mapping[str, Any] = model.model_fields if model is not None else {}
    for part in loc[:-1]:
        annotation = fields[part].annotation if part in fields else None
        nested = next(
            (
                a
                for a in (annotation, *get_args(annotation))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        fields = nested.model_fields if nested is not None else {}
    close = difflib.get_close_matches(str(loc[-1]), list(fields), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(fields)}"


def validate_section(model: type[_Strict], params: Any, root: str) -> Any:
    """``model`` validated from the ``root`` parameters section; :class:`ConfigError` on errors."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"{root}: expected a mapping, got {type(params).__name__}")
    try:
        return model.model_validate(dict(params))
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, root, model)) from None


def load_training_config(params: Mapping[str, Any]) -> TrainingConfig:
    """Validate the ``training`` parameters dict; raise :class:`ConfigError` naming key paths."""
    config = validate_section(TrainingConfig, params, "training")
    if config.params.use_leakance is False:
        learned_leakance = [n for n in LEAKANCE_PARAMETERS if n in config.learned_parameters]
        if learned_leakance:
            logger.warning("%s are learned but params.use_leakance is false", learned_leakance)
    return config
