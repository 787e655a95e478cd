"""The one table of routing parameters: name, routing key, channel column, range, space, unit.

Configuration validation (:mod:`ddr_pipeline.config.training`), the parameter mapping of the models
(:mod:`ddr_pipeline.models.parameters`), the model inputs (observed channel geometry), the
evaluation plots (units, colour scale) and the configuration docs all read this table, so a
parameter is added or renamed here and nowhere else. Names are DDR's (training guide); a
parameter whose DDR spelling differs lists it in :attr:`ParameterSpec.ddr_alias`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParameterSpec:
    """One routing parameter.

    ``routing_key``: key of the parameter in the ``params`` mapping of
    :func:`ddr_pipeline.routing.muskingum_cunge` (``None``: not routed directly, e.g.
    ``K_D_delta`` which becomes ``K_D`` through the soil PTF; ``x`` is a channel input).
    ``channel_column``: variable of ``model_inputs.zarr`` holding observed values that may
    replace the learned ones (``params.observed_geometry``), or ``None``.
    ``default_range``: physical ``(lo, hi)`` a network output in (0, 1) maps into (``None``: the
    parameter is never learned). ``default``: value when not learned (``None``: must be learned
    or configured). ``leakance``: needed only with ``params.use_leakance``. ``domain``: the
    physical ``(lo, hi, lo_open)`` the routing engine accepts for the routed value (``None``
    bound: unbounded), so a configured range outside it fails at validation, not in training.
    """

    name: str
    routing_key: str | None
    unit: str
    description: str
    default_range: tuple[float, float] | None = None
    log_space: bool = False
    default: float | None = None
    channel_column: str | None = None
    leakance: bool = False
    ddr_alias: str | None = None
    domain: tuple[float | None, float | None, bool] = (None, None, False)
    lake: bool = False

    @property
    def learnable(self) -> bool:
        """Whether a network may predict this parameter."""
        return self.default_range is not None


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "n",
        "n",
        "s m⁻¹ᐟ³",
        "Manning's roughness",
        default_range=(0.015, 0.25),
        channel_column="mann_n",
        domain=(0.0, None, True),
    ),
    ParameterSpec(
        "q_spatial",
        "q_spatial",
        "-",
        "channel shape factor (0 = rectangle)",
        (0.0, 1.0),
        domain=(0.0, 1.0, False),
    ),
    ParameterSpec(
        "p_spatial",
        "p",
        "m",
        "top width at 1 m depth, W = p·(d / 1 m)^q",
        (1.0, 200.0),
        log_space=True,
        default=21.0,
        domain=(0.0, None, True),
    ),
    ParameterSpec(
        "top_width",
        "top_width",
        "m",
        "bankfull top width",
        (1.0, 5000.0),
        log_space=True,
        channel_column="top_width",
        domain=(0.0, None, True),
    ),
    ParameterSpec(
        "side_slope",
        "side_slope",
        "H:V",
        "channel side slope (H:V)",
        (0.5, 50.0),
        log_space=True,
        channel_column="side_slope",
        domain=(0.0, None, True),
    ),
    ParameterSpec(
        "K_D_delta",
        None,
        "log10 units",
        "correction of log10 Ks of the riverbed (K_D = 10^(log10 Ks + delta) / 1 m)",
        (-3.0, 1.0),
        leakance=True,
    ),
    ParameterSpec(
        "d_gw", "d_gw", "m", "groundwater depth below the bank", (0.01, 300.0), True, leakance=True
    ),
    ParameterSpec("x", None, "-", "Muskingum X (channel input; NaN filled)", default=0.3),
    # Level-pool lake parameters a network may learn per lake (names of routing.lakes.LAKE_PARAMS)
    ParameterSpec(
        "orifice_area",
        None,
        "m²",
        "lake outlet (orifice) area: the release below the spillway",
        (0.01, 100.0),
        log_space=True,
        domain=(0.0, None, False),
        lake=True,
    ),
    ParameterSpec(
        "orifice_coefficient",
        None,
        "-",
        "lake outlet discharge coefficient",
        (0.05, 1.0),
        domain=(0.0, None, False),
        lake=True,
    ),
    ParameterSpec(
        "weir_coefficient",
        None,
        "m¹ᐟ² s⁻¹",
        "lake spillway (weir) coefficient, Q = C·L·h^1.5",
        (0.1, 2.0),
        domain=(0.0, None, False),
        lake=True,
    ),
    ParameterSpec(
        "weir_length",
        None,
        "m",
        "lake spillway (weir) length",
        (1.0, 1000.0),
        log_space=True,
        domain=(0.0, None, False),
        lake=True,
    ),
    ParameterSpec(
        "withdrawal",
        None,
        "m³/s",
        "water a reservoir releases out of the network (water supply, diversion), from its "
        "storage and throttled to 0 at the dead pool (the orifice crest)",
        (0.0, 50.0),
        domain=(0.0, None, False),
        lake=True,
    ),
)

BY_NAME: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}
#: Default floors of the routing step (``params.attribute_minimums`` keys): discharge m³/s,
#: slope m/m, velocity m/s, depth m, bottom width m. The engine's defaults and the
#: configuration's both read them here.
FLOORS: dict[str, float] = {
    "discharge": 1e-4,
    "slope": 1e-4,
    "velocity": 0.01,
    "depth": 0.01,
    "bottom_width": 0.01,
}
#: Parameters a network may learn (names used in ranges, defaults and learnable lists).
LEARNABLE_PARAMETERS: tuple[str, ...] = tuple(s.name for s in PARAMETERS if s.learnable)
#: Names accepted in ``params.defaults``: learnable parameters plus Muskingum ``x``.
DEFAULTABLE_PARAMETERS: tuple[str, ...] = tuple(s.name for s in PARAMETERS)
#: Observed channel data that may override a learned parameter: parameter -> channel column.
OBSERVABLE_PARAMETERS: dict[str, str] = {
    s.name: s.channel_column for s in PARAMETERS if s.channel_column is not None
}
#: Level-pool lake parameters a network may learn (``routing.lakes`` must be on to use them).
LAKE_PARAMETERS: tuple[str, ...] = tuple(s.name for s in PARAMETERS if s.lake)
#: Parameter -> key in the routing engine's ``params`` mapping (leakance ones apart).
ROUTING_KEYS: dict[str, str] = {
    s.name: s.routing_key
    for s in PARAMETERS
    if s.learnable and not s.leakance and s.routing_key is not None
}
#: Parameters the Muskingum-Cunge step always needs; leakance adds the ``leakance`` ones.
ROUTING_PARAMETERS: tuple[str, ...] = tuple(
    s.name for s in PARAMETERS if s.learnable and not s.leakance and not s.lake
)
LEAKANCE_PARAMETERS: tuple[str, ...] = tuple(s.name for s in PARAMETERS if s.leakance)
#: Channel geometry that ``routing.geometry: ddr`` derives from ``p_spatial``, ``q_spatial`` and
#: the depth each step (DDR's power law): neither learned, nor defaulted, nor routed in that mode.
DDR_DERIVED_PARAMETERS: tuple[str, ...] = ("top_width", "side_slope")


def routed_parameters(geometry: str = "learned", leakance: bool = False) -> tuple[str, ...]:
    """The parameters the Muskingum-Cunge step reads under ``routing.geometry`` (``learned`` or
    ``ddr``) and ``use_leakance``: :data:`ROUTING_PARAMETERS` less the derived geometry in ``ddr``
    mode, plus :data:`LEAKANCE_PARAMETERS` with leakance."""
    derived = DDR_DERIVED_PARAMETERS if geometry == "ddr" else ()
    names = tuple(n for n in ROUTING_PARAMETERS if n not in derived)
    return names + (LEAKANCE_PARAMETERS if leakance else ())


def routing_domains() -> dict[str, tuple[float | None, float | None, bool]]:
    """``{routing key: (lo, hi, lo_open)}``: the engine's input checks of learned parameters."""
    return {s.routing_key: s.domain for s in PARAMETERS if s.learnable and s.routing_key}


def outside_domain(name: str, lo: float, hi: float) -> str | None:
    """Why the range ``[lo, hi]`` of parameter ``name`` leaves its physical domain, or None."""
    low, high, open_low = spec(name).domain
    below = low is not None and (lo < low or (open_low and lo == low))
    if below or (high is not None and hi > high):
        shown = f"{'(' if open_low else '['}{low if low is not None else '-inf'}, "
        shown += f"{high}]" if high is not None else "inf)"
        return f"{name}: range [{lo}, {hi}] leaves the physical domain {shown}"
    return None


def spec(name: str) -> ParameterSpec:
    """The spec of ``name`` (a parameter name or its routing key); ``KeyError`` lists them."""
    found = BY_NAME.get(name) or next((s for s in PARAMETERS if s.routing_key == name), None)
    if found is None:
        raise KeyError(f"unknown parameter {name!r}; known: {list(BY_NAME)}")
    return found


def default_ranges() -> dict[str, tuple[float, float]]:
    """``{name: (lo, hi)}`` of every learnable parameter."""
    return {s.name: s.default_range for s in PARAMETERS if s.default_range is not None}


def default_log_space() -> list[str]:
    """Learnable parameters denormalised in log space by default."""
    return [s.name for s in PARAMETERS if s.learnable and s.log_space]


def default_values() -> dict[str, float]:
    """``{name: value}`` of the parameters that have a default."""
    return {s.name: s.default for s in PARAMETERS if s.default is not None}


def log_scale(name: str) -> bool:
    """Whether plots show ``name`` (parameter, routing key or ``"mean <name>"``) on a log scale."""
    base = name.removeprefix("mean ")
    return base == "K_D" or spec(base).log_space


#: Units of quantities derived from the parameters (``K_D`` from ``K_D_delta`` and the PTF).
DERIVED_UNITS: dict[str, str] = {"K_D": "s⁻¹"}


def units() -> dict[str, str]:
    """``{name: unit}`` of every parameter and derived quantity (plot labels, docs)."""
    return {**{s.name: s.unit for s in PARAMETERS}, **DERIVED_UNITS}
