"""Which geodataset the pipelines are built for: ``DDR_GEODATASET`` (default ``drb``).

The geodataset names a folder under ``data/01_raw`` and the prefix of its datasets
(``<geodataset>.model_inputs`` ...). Its parameters come from the Kedro environment of the same
name, so a continental run sets both::

    DDR_GEODATASET=merit kedro run --env merit --pipelines data_processing

Pipelines that also read the name from parameters (``params:<pipeline>.geodataset``) check that
both agree with :func:`check_geodataset`, so a forgotten ``--env`` fails before any work.
"""

from __future__ import annotations

import os
from collections.abc import Callable

#: Environment variable that selects the geodataset.
ENV_VAR = "DDR_GEODATASET"
#: The demo geodataset, used when the variable is unset or empty.
DEFAULT_GEODATASET = "drb"
#: Every geodataset the project knows (each has a ``conf/<name>`` environment but the demo).
KNOWN_GEODATASETS: tuple[str, ...] = ("drb", "lynker_hydrofabric", "merit")


def validate_geodataset(name: str) -> str:
    """Return ``name`` if it is a known geodataset, else raise ``ValueError`` listing them."""
    if name not in KNOWN_GEODATASETS:
        raise ValueError(
            f"unknown geodataset {name!r} (from {ENV_VAR} or a pipeline argument); "
            f"known geodatasets: {', '.join(KNOWN_GEODATASETS)}"
        )
    return name


def active_geodataset() -> str:
    """The geodataset named by ``DDR_GEODATASET`` (default ``drb``), validated."""
    value = os.environ.get(ENV_VAR, "").strip()
    return validate_geodataset(value or DEFAULT_GEODATASET)


def check_geodataset(configured: str, geodataset: str) -> str:
    """Node helper: fail unless the ``geodataset`` parameter matches the pipeline's geodataset.

    Args:
        configured: the value of ``params:<pipeline>.geodataset`` (from the Kedro environment).
        geodataset: the geodataset the pipeline was built for (``DDR_GEODATASET``).

    Returns:
        The geodataset name.
    """
    if configured != geodataset:
        raise ValueError(
            f"the parameters are for geodataset {configured!r} but the pipeline was built for "
            f"{geodataset!r} ({ENV_VAR}): name the same geodataset in both, e.g. "
            f"`{ENV_VAR}=merit kedro run --env merit ...` (the demo drb needs neither)"
        )
    return geodataset


def geodataset_check(geodataset: str) -> Callable[[str], str]:
    """A node function: ``check_geodataset(configured, geodataset)`` for a fixed ``geodataset``."""

    def check(configured: str) -> str:
        return check_geodataset(configured, geodataset)

    check.__name__ = check.__qualname__ = "check_geodataset"
    check.__doc__ = check_geodataset.__doc__
    return check
